"""SAM as two ONNX graphs, in the layout transformers.js's `SamModel` loads.

    onnx/vision_encoder.onnx                 pixel_values (1, 3, S, S)
                                             -> image_embeddings (1, C, h, w), image_positional_embeddings (1, C, h, w)
    onnx/prompt_encoder_mask_decoder.onnx    image_embeddings, image_positional_embeddings,
                                             input_points (1, K, N, 2), input_labels (1, K, N)
                                             [input_masks (1, 1, 4h, 4w), has_input_masks (1,): optional]
                                             -> iou_scores (1, K, 1), pred_masks (1, K, 1, 4h, 4w)

and `*_quantized.onnx` beside each (int8 weights). K prompts share the frame's embedding; each is N
points in the model's input pixels (the resized frame), with a label each:

| label | meaning |
|---|---|
| 1 / 0 | a click on polyp / on what is not polyp |
| 2 / 3 | a box's top-left / bottom-right corner |
| -1 | padding (SAM's "not a point": added after the clicks of a prompt with no box) |

A box goes in as its two corners labelled 2 and 3, as SAM's own ONNX export and web demo take it:
a graph has a fixed set of inputs, and this way one graph takes a box, clicks, or both, giving the
same tokens as transformers' `SamPromptEncoder` (clicks, then the box's two corners; a padding point
after clicks with no box). The dense prompt is `input_masks` where `has_input_masks` is 1 (the
previous round's low-resolution logits); else, for a model trained with the ellipse mask prompt
(`mask_prompts`), the ellipse in its box, made inside the graph from the corners, so a runtime
that passes only a box gets the model's own prompting; else SAM's "no mask". The two optional inputs
have defaults in the graph (ONNX initializers), so a runtime passing only the four inputs of
transformers.js runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from polyp_sam_hf.models.mask_prompts import MASK_PROMPTS, mask_prompt_name, unwrap_config
from polyp_sam_hf.models.single_mask_decoder import SingleMaskDecoder, tokens_of

ONNX_DIR = "onnx"
QUANTIZED_SUFFIX = "_quantized"
PADDING_LABEL, BOX_CORNER_LABELS = -1, (2, 3)


@dataclass(frozen=True)
class GraphLayout:
    """One exported graph: its file's stem and the tensors it takes and gives, by name.

    Args:
        part: the file's stem in `onnx/` (transformers.js's name for the graph).
        title: the model parts it holds, in words (for messages).
        inputs: the inputs every runtime passes, in order.
        outputs: the outputs, in order.
        optional: inputs after `inputs` that have a default inside the graph (an initializer of the same name).
    """

    part: str
    title: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    optional: tuple[str, ...] = ()

    def file(self, quantized: bool = False) -> str:
        """`onnx/<part>[_quantized].onnx`, relative to a model folder."""
        return f"{ONNX_DIR}/{self.part}{QUANTIZED_SUFFIX if quantized else ''}.onnx"

    @property
    def all_inputs(self) -> tuple[str, ...]:
        return self.inputs + self.optional


ENCODER = GraphLayout("vision_encoder", "image encoder", ("pixel_values",),
                      ("image_embeddings", "image_positional_embeddings"))
DECODER = GraphLayout("prompt_encoder_mask_decoder", "prompt encoder and mask decoder",
                      ("image_embeddings", "image_positional_embeddings", "input_points", "input_labels"),
                      ("iou_scores", "pred_masks"), optional=("input_masks", "has_input_masks"))
GRAPHS = (ENCODER, DECODER)


class EncoderGraph(torch.nn.Module):
    """`vision_encoder.onnx`: SAM's image encoder and its positional embedding grid."""

    def __init__(self, sam: torch.nn.Module) -> None:
        super().__init__()
        self.sam = sam

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings = self.sam.get_image_embeddings(pixel_values)
        positional = self.sam.get_image_wide_positional_embeddings().repeat(pixel_values.shape[0], 1, 1, 1)
        return embeddings, positional


class DecoderGraph(torch.nn.Module):
    """`prompt_encoder_mask_decoder.onnx`: points (box corners among them) to single-mask logits.

    The sparse tokens are transformers' `SamPromptEncoder`'s own arithmetic written for one labelled
    point list: the positional encoding of the point's pixel centre, plus the label's embedding
    (`point_embed[label]` for 0-3; "not a point" for -1).
    """

    def __init__(self, sam: torch.nn.Module) -> None:
        super().__init__()
        self.sam = sam
        self.mask_decoder = SingleMaskDecoder(sam.mask_decoder)
        config = unwrap_config(sam).prompt_encoder_config
        self.input_size = config.image_size
        self.grid = 4 * (config.image_size // config.patch_size)
        self.mask_prompt = MASK_PROMPTS[mask_prompt_name(sam)]

    def sparse_tokens(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(1, K, N, 2) points in input pixels and (1, K, N) labels -> (1, K, N, C) prompt tokens."""
        encoder = self.sam.prompt_encoder
        tokens = encoder.shared_embedding(points + 0.5, (self.input_size, self.input_size))
        labels = labels[..., None]
        tokens = torch.where(labels == PADDING_LABEL, encoder.not_a_point_embed.weight, tokens)
        for label in range(4):  # 0, 1 clicks; 2, 3 box corners
            tokens = torch.where(labels == label, tokens + encoder.point_embed[label].weight, tokens)
        return tokens

    def dense_tokens(self, points: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
                     has_masks: torch.Tensor) -> torch.Tensor:
        """(1, 1, h * w, C) channels-last: the given masks' embedding, else the model's mask prompt's
        from its box, else "no mask".

        One mask embedding either way: the mask prompt is chosen before it is embedded, and the choice
        of "no mask" is made on its 16 channels, before the last 1 x 1 convolution to C: `used` (0 or
        1) scales them and picks the bias, so "no mask" is that convolution of zeros plus
        `no_mask_embed`, exactly, and no C-channel map is selected or broadcast."""
        encoder = self.sam.prompt_encoder
        given = has_masks.reshape(()) > 0.5
        corner = [(labels == label).to(points.dtype)[..., None] for label in BOX_CORNER_LABELS]  # (1, K, N, 1)
        boxes = torch.cat([(points * c).sum(2) for c in corner], -1)  # (1, K, 4): x0, y0, x1, y1
        valid = (corner[0].sum((2, 3)) > 0) & (corner[1].sum((2, 3)) > 0)  # (1, K)
        own = self.mask_prompt(boxes, valid, self.input_size, self.grid)
        if own is None:  # no mask prompt of its own: the given masks, or nothing
            chosen, used = masks, given
        else:  # the given masks, else the ellipse where the frame has a box
            chosen, used = torch.where(given, masks, own), given | valid.any()
        embed = encoder.mask_embed
        hidden = embed.activation(embed.layer_norm1(embed.conv1(chosen)))
        hidden = embed.activation(embed.layer_norm2(embed.conv2(hidden)))  # (1, 16, h, w)
        used = used.to(hidden.dtype)
        weight = embed.conv3.weight.flatten(1).t()  # (16, C)
        bias = used * embed.conv3.bias + (1 - used) * encoder.no_mask_embed.weight[0]
        return tokens_of(hidden) * used @ weight + bias

    def forward(self, image_embeddings: torch.Tensor, image_positional_embeddings: torch.Tensor,
                input_points: torch.Tensor, input_labels: torch.Tensor, input_masks: torch.Tensor,
                has_input_masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sparse = self.sparse_tokens(input_points, input_labels)
        dense = self.dense_tokens(input_points, input_labels, input_masks, has_input_masks)
        image = tokens_of(image_embeddings) + dense
        low_res, iou = self.mask_decoder.decode_tokens(image, tokens_of(image_positional_embeddings), sparse,
                                                       image_embeddings.shape[-1])
        return iou, low_res


def graph_prompts(boxes: torch.Tensor | None = None, points: torch.Tensor | None = None,
                  labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder graph's `input_points` and `input_labels` for prompts as `segmenter.decode` takes them.

    Args:
        boxes: (1, K, 4) boxes in input pixels, or None.
        points: (1, K, N, 2) clicks in input pixels, or None.
        labels: (1, K, N) click labels (1 polyp, 0 not).

    Returns:
        (1, K, M, 2) float32 points and (1, K, M) int64 labels: the clicks, then each box's corners
        (2, 3); with no box, a padding point (-1) after the clicks.
    """
    parts, kinds = [], []
    if points is not None:
        parts.append(points.float())
        kinds.append(labels.long())
    if boxes is not None:
        k = boxes.shape[1]
        parts.append(boxes.float().reshape(1, k, 2, 2))
        kinds.append(torch.tensor(BOX_CORNER_LABELS, device=boxes.device).expand(1, k, 2))
    else:
        k = points.shape[1]
        parts.append(torch.zeros(1, k, 1, 2, device=points.device))
        kinds.append(torch.full((1, k, 1), PADDING_LABEL, device=points.device))
    return torch.cat(parts, 2), torch.cat(kinds, 2).long()
