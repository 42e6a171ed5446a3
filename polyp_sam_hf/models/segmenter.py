"""The one road from frames and boxes to mask logits at the original size.

Training's loss and validation, the test report, `evaluate`, `predict`, the app and the export
check all take it:

    encoder inputs (pixels or cached embeddings) + boxes in input pixels
      -> `decode`: the mask prompt made from the boxes (`mask_prompts`), SAM's prompt encoder and
         mask decoder, one mask per box: (B, K, h, w) low-resolution logits
      -> `to_original`: upsampled to the input size S, the padding cropped, resized to the frame
         (transformers' `post_process_masks`): (K, H, W) logits
      -> `to_mask`: logit > `LOGIT_THRESHOLD` (probability 0.5, SAM's own threshold)

`batch_logits` runs `decode` on a training batch (`data.batches`); `PolypSegmenter` runs it on
frames embedded once, for any number of boxes. SAM resizes a frame so its longest side is S, pads
it at the bottom and right to S x S, and predicts masks at S / 4.

    seg = PolypSegmenter.from_pretrained("runs/table2-b-full/best")
    masks = seg.predict(Image.open("frame.png"), [[120, 80, 310, 260]])   # (1, H, W) bool
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import SamImageProcessor

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.core.threads import flush_denormal_floats
from polyp_sam_hf.data.preprocessing import Preprocessing, normalize_pixels, scale_boxes
from polyp_sam_hf.data.prompts import AUTO_BOX_MARGIN, MIN_POLYP_AREA, PromptMode, component_boxes, grow_box
from polyp_sam_hf.data.reading import read_image, to_rgb
from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.models.mask_prompts import mask_prompt_logits, mask_prompt_name

# A pixel is polyp where its logit is above this: probability 0.5, SAM's own threshold. Every mask the
# library makes from logits (scoring, masks written, the app, self-prompting) goes through `to_mask`.
LOGIT_THRESHOLD = 0.0
PROBABILITY_THRESHOLD = 1 / (1 + math.exp(-LOGIT_THRESHOLD))  # 0.5: a probability map is polyp strictly above it


def to_mask(logits: torch.Tensor) -> torch.Tensor:
    """Boolean masks from logits of any shape: logit > `LOGIT_THRESHOLD`."""
    return logits > LOGIT_THRESHOLD


def union_mask(logits: torch.Tensor | None, height: int, width: int) -> np.ndarray:
    """A frame's prediction: the union of its prompts' masks, (H, W) bool numpy; all False where the
    frame had no prompt (`logits` None). What evaluate scores, predict and the app write.

    Args:
        logits: (K, H, W) logits at the original size, or None.
    """
    if logits is None or not len(logits):
        return np.zeros((height, width), dtype=bool)
    return to_mask(logits).any(0).cpu().numpy()


# ------------------------------------------------------------------ down: the model


def decode(model: torch.nn.Module, encoder_inputs: dict, boxes: torch.Tensor | None = None,
           box_valid: torch.Tensor | None = None, mask_prompt: str | None = None) -> torch.Tensor:
    """Low-resolution mask logits from SAM's prompt encoder and mask decoder.

    Args:
        encoder_inputs: `{"pixel_values": (B, 3, S, S)}` or `{"image_embeddings": (B, C, h, w)}`.
        boxes: (B, K, 4) boxes in input pixels (the resized frame), or None for no prompt at all.
        box_valid: (B, K) bool, False for padding boxes (default: all valid).
        mask_prompt: a `mask_prompts.MASK_PROMPTS` name; default: the model's own setting.

    Returns:
        (B, K, h, w) logits, one mask per box (SAM's single-mask output); (B, 1, h, w) without boxes
        (the mask of everything a prompt-free model finds).
    """
    if boxes is None:
        return model(**encoder_inputs, multimask_output=False).pred_masks[:, :, 0]
    if box_valid is None:
        box_valid = torch.ones(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
    masks = mask_prompt_logits(model, boxes, box_valid, mask_prompt)
    extra = {} if masks is None else {"input_masks": masks}
    return model(**encoder_inputs, input_boxes=boxes, multimask_output=False, **extra).pred_masks[:, :, 0]


def encoder_inputs(batch: dict) -> dict:
    """What a `data.batches` batch gives the image encoder: cached embeddings, pixel values, or
    uint8 frames normalised here on their device."""
    if "image_embeddings" in batch:
        return {"image_embeddings": batch["image_embeddings"]}
    if "pixel_values" in batch:
        return {"pixel_values": batch["pixel_values"]}
    return {"pixel_values": normalize_pixels(batch["pixel_uint8"], batch["reshaped"], batch["pixel_scale"],
                                             batch["pixel_shift"])}


def batch_logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """`decode` on a training batch: (B, K, h, w), or (B, 1, h, w) for a prompt-free batch."""
    if batch.get("prompt_free"):
        return decode(model, encoder_inputs(batch))
    return decode(model, encoder_inputs(batch), batch["input_boxes"], batch["box_valid"])


# ------------------------------------------------------------------ up: back to the frame


def upsample_to_input(low_res: torch.Tensor, input_size: int) -> torch.Tensor:
    """(B, K, h, w) logits -> (B, K, S, S), bilinear, as SAM's post-processing does."""
    return F.interpolate(low_res.float(), (input_size, input_size), mode="bilinear", align_corners=False)


def valid_region(reshaped: torch.Tensor, input_size: int) -> torch.Tensor:
    """(B, S, S) bool: True inside each image's resized frame, False on the padding.

    Args:
        reshaped: (B, 2) resized (height, width) of each frame.
    """
    rows = torch.arange(input_size, device=reshaped.device)
    inside_h = rows[None, :] < reshaped[:, 0:1]
    inside_w = rows[None, :] < reshaped[:, 1:2]
    return inside_h[:, :, None] & inside_w[:, None, :]


# only its post_process_masks is used, given the input size each call (the models' sizes differ)
_SAM_POSTPROCESS = SamImageProcessor()


def to_original(low_res: torch.Tensor, input_size: int, reshaped: tuple[int, int],
                original: tuple[int, int]) -> torch.Tensor:
    """One frame's (K, h, w) low-resolution logits -> (K, H, W) logits at the original size:
    transformers' `SamImageProcessor.post_process_masks` (upsample to the input size, crop the
    padding, resize to the frame), unthresholded."""
    size = {"height": input_size, "width": input_size}
    return _SAM_POSTPROCESS.post_process_masks([low_res.float()[None]], [[int(v) for v in original]],
                                               [[int(v) for v in reshaped]], binarize=False, pad_size=size)[0][0]


def batch_to_original(logits: torch.Tensor, batch: dict) -> list[torch.Tensor | None]:
    """`to_original` for each frame of a batch, its valid prompts only: a list of (K, H, W), or None
    for a frame with no prompt (empty ground truth in `test`)."""
    size = batch["targets"].shape[-1]
    out = []
    for i in range(logits.shape[0]):
        own = logits[i][batch["box_valid"][i]]
        out.append(to_original(own, size, batch["reshaped"][i].tolist(), batch["original"][i].tolist())
                   if own.shape[0] else None)
    return out


# ------------------------------------------------------------------ frames embedded once


@dataclass
class ImageEmbedding:
    """One frame after the image encoder.

    Attributes:
        embedding: (C, h, w) float tensor on the model's device.
        original: (height, width) of the frame.
        reshaped: (height, width) of the frame resized for the encoder, before padding.
    """

    embedding: torch.Tensor
    original: tuple[int, int]
    reshaped: tuple[int, int]


def validate_boxes(boxes, width: int, height: int, name: str = "image") -> np.ndarray:
    """Check box prompts against the frame and return them as a (K, 4) float32 array.

    Raises:
        ConfigError: a box is not 4 numbers, has x1 <= x0 or y1 <= y0, or lies outside the frame;
            the message names the box and the frame size.
    """
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ConfigError(f"Boxes for {name} must be [x0, y0, x1, y1] each; got shape {arr.shape}.")
    if not np.isfinite(arr).all():  # NaN fails every comparison below, so it must be caught here
        raise ConfigError(f"Boxes for {name} must be finite numbers; got {arr.tolist()}.")
    for box in arr:
        x0, y0, x1, y1 = box.tolist()
        if x1 <= x0 or y1 <= y0:
            raise ConfigError(f"Box {box.tolist()} for {name} needs x1 > x0 and y1 > y0.")
        if x0 < 0 or y0 < 0 or x1 > width - 1 or y1 > height - 1:
            raise ConfigError(
                f"Box {box.tolist()} lies outside {name} ({width}x{height}): coordinates are pixels, "
                f"x in [0, {width - 1}], y in [0, {height - 1}]."
            )
    return arr


class PolypSegmenter:
    """Box-prompted polyp segmentation with a SAM checkpoint (ours, or plain `facebook/sam-vit-*`).

    The image encoder runs once per frame; all its boxes share that embedding.
    """

    def __init__(self, model, processor, device: str | torch.device | None = None,
                 mask_prompt: str | None = None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cpu":  # SAM ViT on padded frames (core/threads.py); this thread's at least
            flush_denormal_floats()
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.prep = Preprocessing.of(processor)
        self.input_size = self.prep.pad_size
        # the dense prompt made from the boxes: the model's own (`mask_prompts`) unless overridden
        self.mask_prompt = mask_prompt or mask_prompt_name(model)

    @classmethod
    def from_pretrained(cls, name: str, device: str | torch.device | None = None,
                        mask_prompt: str | None = None) -> "PolypSegmenter":
        """Load from a Hub id, a local folder or a built-in model name (see `load_model_and_processor`)."""
        model, processor = load_model_and_processor(name)
        return cls(model, processor, device, mask_prompt)

    @staticmethod
    def as_image(image: Image.Image | np.ndarray | str | Path) -> Image.Image:
        """A frame as 8-bit RGB PIL from a PIL image, an HWC array, or a file path (read with errors
        that name the file)."""
        if isinstance(image, (str, Path)):
            return read_image(image)
        if isinstance(image, np.ndarray):
            return to_rgb(Image.fromarray(image))
        return to_rgb(image)

    def embed(self, image: Image.Image | np.ndarray | str | Path) -> ImageEmbedding:
        """Run the image encoder on one frame (HWC uint8 array, PIL image, or a file path)."""
        return self.embed_batch([image])[0]

    @torch.no_grad()
    def embed_batch(self, images: list) -> list[ImageEmbedding]:
        """Run the image encoder on several frames in one call."""
        images = [self.as_image(image) for image in images]
        pixels, reshaped = self.prep.pixel_values(images, self.device)
        embeddings = self.model.get_image_embeddings(pixels)
        return [ImageEmbedding(emb, (im.height, im.width), shape) for emb, im, shape in zip(embeddings, images, reshaped)]

    @torch.no_grad()
    def logits(self, embedded: ImageEmbedding, boxes: np.ndarray | None) -> torch.Tensor:
        """(K, H, W) mask logits at the original size for (K, 4) boxes in original pixels; with
        `boxes=None`, (1, H, W) with no prompt at all (a model trained with `--prompt_mode none`
        marks every polyp it finds)."""
        inputs = {"image_embeddings": embedded.embedding[None]}
        if boxes is None:
            low_res = decode(self.model, inputs)
        else:
            scaled = scale_boxes(boxes, embedded.original, embedded.reshaped)
            low_res = decode(self.model, inputs, torch.from_numpy(scaled)[None].to(self.device),
                             mask_prompt=self.mask_prompt)
        return to_original(low_res[0], self.input_size, embedded.reshaped, embedded.original)

    @torch.no_grad()
    def auto_logits(self, embedded: ImageEmbedding, rounds: int = 1, margin: float = AUTO_BOX_MARGIN,
                    min_area: int = MIN_POLYP_AREA) -> tuple[torch.Tensor | None, np.ndarray]:
        """Self-prompting: the prompt-free mask, split into polyps (8-connected components of at least
        `min_area` pixels), each one's box grown by `margin`, then SAM prompted with those boxes, all on
        the one image embedding; `rounds` > 1 repeats from the last round's mask.

        Returns:
            ((K, H, W) logits of the K self-made boxes at the original size, or None when nothing
            was found; the (K, 4) boxes).
        """
        height, width = embedded.original
        mask = union_mask(self.logits(embedded, None), height, width)
        logits, boxes = None, np.zeros((0, 4), np.float32)
        for _ in range(rounds):
            found = [grow_box(b, margin, width, height) for b in component_boxes(mask, min_area)]
            if not found:
                break
            boxes = np.asarray(found, np.float32)
            logits = self.logits(embedded, boxes)
            mask = union_mask(logits, height, width)
        return logits, boxes

    def logits_for_mode(self, embedded: ImageEmbedding, mode: PromptMode, boxes=None, rounds: int = 1,
                        min_area: int = MIN_POLYP_AREA) -> tuple[torch.Tensor | None, np.ndarray | None]:
        """Logits for a frame prompted as `mode` says: with `boxes` (a box mode), with none (prompt-free),
        or with boxes made from the prompt-free mask (self-prompted, `rounds` times, polyps of at least
        `min_area` pixels).

        Returns:
            ((K, H, W) logits at the original size, or None where there is nothing to prompt; the
            (K, 4) boxes given, or None for prompt-free).
        """
        if mode.self_prompted:
            return self.auto_logits(embedded, rounds=rounds, min_area=min_area)
        if mode.boxes is None:
            return self.logits(embedded, None), None
        boxes = np.asarray(boxes if boxes is not None else [], np.float32).reshape(-1, 4)
        return (self.logits(embedded, boxes) if len(boxes) else None), boxes

    def predict(self, image, boxes, name: str = "image") -> np.ndarray:
        """Masks for each box: (K, H, W) bool at the frame's size (`to_mask` of the logits)."""
        return self.masks(self.embed(image), boxes, name)

    def masks(self, embedded: ImageEmbedding, boxes, name: str = "image") -> np.ndarray:
        """`predict` for a frame already embedded (several prompts, one encoder pass)."""
        boxes = validate_boxes(boxes, embedded.original[1], embedded.original[0], name)
        return to_mask(self.logits(embedded, boxes)).cpu().numpy()

    def predict_proba(self, image, boxes, name: str = "image") -> np.ndarray:
        """Polyp probabilities for each box: (K, H, W) float32 in [0, 1]."""
        embedded = self.embed(image)
        boxes = validate_boxes(boxes, embedded.original[1], embedded.original[0], name)
        return torch.sigmoid(self.logits(embedded, boxes)).cpu().numpy()
