"""The mask decoder's single-mask output, written for speed on a CPU: what the ONNX decoder graph
runs, and what a model loaded to predict runs in PyTorch (`route_single_masks`).

transformers' `SamMaskDecoder` with `multimask_output=False` gives the same logits up to the order
of float sums (tests compare them on tiny SAM and TinyViT-SAM); it is the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from polyp_sam_hf.models.token_side_attention import two_way_transformer


def _channels_last(conv: torch.nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's kernel-2, stride-2 transposed convolution as one matrix product on channels-last pixels:
    (C_in, 4 * C_out) weights and their bias, columns in (p, q, o) order, so that `x @ W + b`
    reshaped to (..., 2, 2, C_out) is output channel o at offset (p, q) of the pixel's 2 x 2 block."""
    if (tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.padding)) != ((2, 2), (2, 2), (0, 0)):
        raise ValueError(f"not SAM's kernel-2, stride-2 upscaling without padding: {conv}")
    c_in = conv.weight.shape[0]
    weight = conv.weight.detach().permute(0, 2, 3, 1).reshape(c_in, -1)  # (c, o, p, q) -> (c, (p, q, o))
    return weight.clone(), conv.bias.detach().repeat(4).clone()


class SingleMaskDecoder(torch.nn.Module):
    """transformers' `SamMaskDecoder` with `multimask_output=False`, written for a CPU: the same sums, in
    an order that needs neither a transposed convolution nor a big transpose.

    The two-way transformer's cross attentions are taken on the prompt tokens' side
    (`token_side_attention`). For the upscaling, transformers lays the two-way transformer's image
    tokens out as a (C, h, w) map, upscales it with two kernel-2, stride-2 transposed convolutions (a
    layer norm over channels between), and takes the product of every one of the four mask tokens'
    hypernetwork output with the result. Here the tokens stay channels-last: each transposed
    convolution is one matrix product per pixel into its 2 x 2 block (`_channels_last`), the layer
    norm is over the last axis, only the single-mask token is multiplied, and the blocks are put in
    place once, on the (4h, 4w) logits. The matrix products are what ONNX Runtime's int8 quantization
    reaches. Their weights are copied at construction (buffers, so that the ONNX graph holds them as
    weight matrices): build it on a model whose weights are final.
    """

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder
        for i, conv in enumerate((decoder.upscale_conv1, decoder.upscale_conv2), start=1):
            weight, bias = _channels_last(conv)
            self.register_buffer(f"upscale{i}_weight", weight)
            self.register_buffer(f"upscale{i}_bias", bias)

    def forward(self, image_embeddings: torch.Tensor, image_positional_embeddings: torch.Tensor,
                sparse: torch.Tensor | None, dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """transformers' arguments: (1, C, h, w) embeddings and positional grid, (1, K, N, C) sparse
        (None: no prompt, K = 1) and (1, C, h, w) dense prompt embeddings -> (1, K, 1, 4h, 4w)
        low-resolution logits and (1, K, 1) IoU scores."""
        side = image_embeddings.shape[-1]
        return self.decode_tokens(tokens_of(image_embeddings + dense), tokens_of(image_positional_embeddings),
                                  sparse, side)

    def decode_tokens(self, image_tokens: torch.Tensor, positional_tokens: torch.Tensor, sparse: torch.Tensor | None,
                      side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The same from (1, 1, h * w, C) channels-last image tokens (the dense prompt added) and
        positional tokens: transformers' two-way transformer, fed its image tokens as they are and
        shared by the K prompts through broadcasting (neither repeated K times nor transposed)."""
        decoder = self.decoder
        k, channels = (1 if sparse is None else sparse.shape[1]), image_tokens.shape[-1]
        tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight]).repeat(1, k, 1, 1)
        prompt = tokens if sparse is None else torch.cat((tokens, sparse), dim=2)
        tokens, image = two_way_transformer(decoder.transformer, prompt, image_tokens, positional_tokens)
        pixels = image.reshape(k, side, side, channels)  # channels-last pixels, per prompt
        norm = decoder.upscale_layer_norm
        up = (pixels @ self.upscale1_weight + self.upscale1_bias).reshape(k, side, side, 2, 2, -1)  # (p, q, o)
        up = decoder.activation(F.layer_norm(up, up.shape[-1:], norm.weight, norm.bias, norm.eps))
        up = decoder.activation(up @ self.upscale2_weight + self.upscale2_bias)  # (k, h, w, p, q, (p', q', o'))
        hyper = decoder.output_hypernetworks_mlps[0](tokens[:, :, 1, :])  # (1, K, C'): the single-mask token
        logits = up.reshape(k, -1, hyper.shape[-1]) @ hyper.reshape(k, -1, 1)  # (K, h * w * 16, 1)
        logits = logits.reshape(k, side, side, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4, 6)
        iou = decoder.iou_prediction_head(tokens[:, :, 0, :])[:, :, :1]
        return logits.reshape(1, k, 1, 4 * side, 4 * side), iou


def tokens_of(grid: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) -> (1, 1, h * w, C): a map as the two-way transformer's channels-last tokens."""
    return grid.flatten(2).transpose(1, 2).unsqueeze(1)


class SingleMaskRoute(torch.nn.Module):
    """A loaded model's mask decoder for prediction: a single-mask call for one frame goes through
    `SingleMaskDecoder`, every other call (several masks, a batch of frames) through transformers' own
    decoder, which it keeps (`decoder`) with its weights."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder
        self.single = SingleMaskDecoder(decoder)

    def forward(self, image_embeddings: torch.Tensor, image_positional_embeddings: torch.Tensor,
                sparse_prompt_embeddings: torch.Tensor | None, dense_prompt_embeddings: torch.Tensor,
                multimask_output: bool, attention_similarity: torch.Tensor | None = None,
                target_embedding: torch.Tensor | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """transformers' `SamMaskDecoder.forward`: (B, K, M, 4h, 4w) logits and (B, K, M) IoU scores."""
        if multimask_output or image_embeddings.shape[0] != 1 or attention_similarity is not None \
                or target_embedding is not None:
            return self.decoder(image_embeddings=image_embeddings,
                                image_positional_embeddings=image_positional_embeddings,
                                sparse_prompt_embeddings=sparse_prompt_embeddings,
                                dense_prompt_embeddings=dense_prompt_embeddings, multimask_output=multimask_output,
                                attention_similarity=attention_similarity, target_embedding=target_embedding, **kwargs)
        return self.single(image_embeddings, image_positional_embeddings, sparse_prompt_embeddings,
                           dense_prompt_embeddings)


def route_single_masks(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with its mask decoder behind a `SingleMaskRoute`, for a model loaded to predict (a
    correction click on a stored embedding is mostly the mask decoder: benchmarks/clicks.py). A model
    being trained keeps transformers' decoder, its checkpoints as transformers writes them. Routing a
    model twice changes nothing more."""
    if not isinstance(model.mask_decoder, SingleMaskRoute):
        model.mask_decoder = SingleMaskRoute(model.mask_decoder)
    return model
