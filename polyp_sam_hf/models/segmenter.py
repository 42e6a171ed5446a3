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
from transformers import SamImageProcessor, SamProcessor

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.core.registry import lookup
from polyp_sam_hf.core.threads import flush_denormal_floats
from polyp_sam_hf.core.wrappers import unwrap
from polyp_sam_hf.data.clicks import nearest_box
from polyp_sam_hf.data.preprocessing import Preprocessing, normalize_pixels, scale_boxes, scale_points
from polyp_sam_hf.data.prompts import AUTO_BOX_MARGIN, MIN_POLYP_AREA, PromptMode, component_boxes, grow_box
from polyp_sam_hf.data.reading import read_image, to_rgb
from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.models.mask_prompts import mask_prompt_logits, mask_prompt_name
from polyp_sam_hf.models.onnx_runtime import OnnxSam
from polyp_sam_hf.models.single_mask_decoder import route_single_masks

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
           box_valid: torch.Tensor | None = None, mask_prompt: str | None = None, points: torch.Tensor | None = None,
           labels: torch.Tensor | None = None, previous: torch.Tensor | None = None) -> torch.Tensor:
    """Low-resolution mask logits from SAM's prompt encoder and mask decoder.

    The dense (mask) prompt is the previous prediction's logits where given (a correction round);
    else the mask the model makes from its boxes (`mask_prompts`: the ellipse for a model trained
    with it); else none.

    Args:
        encoder_inputs: `{"pixel_values": (B, 3, S, S)}` or `{"image_embeddings": (B, C, h, w)}`.
        boxes: (B, K, 4) boxes in input pixels (the resized frame), or None.
        box_valid: (B, K) bool, False for padding boxes (default: all valid).
        mask_prompt: a `mask_prompts.MASK_PROMPTS` name; default: the model's own setting.
        points: (B, K, N, 2) clicks `x, y` in input pixels, beside the boxes (the same K) or instead of
            them; None for none.
        labels: (B, K, N) int: 1 polyp, 0 not polyp, -10 padding (ignored).
        previous: (B, 1, h, w) low-resolution logits of the previous prediction, the dense prompt of a
            correction round (SAM takes one per frame).

    Returns:
        (B, K, h, w) logits, one mask per prompt (SAM's single-mask output); (B, 1, h, w) with no box and
        no point (the mask of everything a prompt-free model finds).
    """
    if boxes is None and points is None:
        return model(**encoder_inputs, multimask_output=False).pred_masks[:, :, 0]
    prompts: dict = {}
    if boxes is not None:
        prompts["input_boxes"] = boxes
    if points is not None:
        if labels is None:
            raise ConfigError("Points need their labels: 1 on polyp, 0 on what is not polyp.")
        prompts["input_points"], prompts["input_labels"] = points, labels
    if previous is not None:
        prompts["input_masks"] = previous
    elif boxes is not None:
        if box_valid is None:
            box_valid = torch.ones(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
        masks = mask_prompt_logits(model, boxes, box_valid, mask_prompt)
        if masks is not None:
            prompts["input_masks"] = masks
    return model(**encoder_inputs, multimask_output=False, **prompts).pred_masks[:, :, 0]


def encoder_inputs(batch: dict) -> dict:
    """What a `data.batches` batch gives the image encoder: cached embeddings, pixel values, or
    uint8 frames normalised here on their device."""
    if "image_embeddings" in batch:
        return {"image_embeddings": batch["image_embeddings"]}
    if "pixel_values" in batch:
        return {"pixel_values": batch["pixel_values"]}
    return {"pixel_values": normalize_pixels(batch["pixel_uint8"], batch["reshaped"], batch["pixel_scale"],
                                             batch["pixel_shift"])}


def sam_of(model: torch.nn.Module) -> torch.nn.Module:
    """The SAM inside Accelerate's or DDP's wrapper, and inside PEFT's: what `get_image_embeddings` is on."""
    return unwrap(model, "get_image_embeddings")


def shared_embeddings(model: torch.nn.Module, batch: dict) -> dict:
    """The batch's image embeddings, computed once for every round: `{"image_embeddings": (B, C, h, w)}`."""
    inputs = encoder_inputs(batch)
    if "image_embeddings" in inputs:
        return inputs
    encoder = sam_of(model)
    if not torch.is_grad_enabled() or not any(p.requires_grad for p in encoder.vision_encoder.parameters()):
        return {"image_embeddings": encoder.get_image_embeddings(inputs["pixel_values"])}
    # transformers' get_image_embeddings runs under no_grad: a trained encoder (full, LoRA) is called itself
    return {"image_embeddings": encoder.vision_encoder(inputs["pixel_values"])[0]}


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


MAX_POINTS = 64  # clicks on one frame: SAM's decoder attends to every one, so its cost grows with them


def validate_points(points, labels, width: int, height: int, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Check click prompts against the frame: points (N, 2) or (K, N, 2) `x, y` in pixels, labels of
    the same leading shape, 1 on polyp and 0 on what is not (default: all 1).

    Raises:
        ConfigError: a point not two finite numbers or outside the frame, a label other than 0 or 1,
            a label count that is not the point count, or more than `MAX_POINTS` points.
    """
    arr = np.asarray(points, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim not in (2, 3) or arr.shape[-1] != 2:
        raise ConfigError(f"Points for {name} must be [x, y] each; got shape {arr.shape}.")
    if arr.shape[-2] > MAX_POINTS:
        raise ConfigError(f"{arr.shape[-2]} points for {name}; at most {MAX_POINTS} a prompt.")
    if not np.isfinite(arr).all():
        raise ConfigError(f"Points for {name} must be finite numbers; got {arr.tolist()}.")
    outside = (arr[..., 0] < 0) | (arr[..., 0] > width - 1) | (arr[..., 1] < 0) | (arr[..., 1] > height - 1)
    if outside.any():
        raise ConfigError(f"Point {arr[outside][0].tolist()} lies outside {name} ({width}x{height}): coordinates "
                          f"are pixels, x in [0, {width - 1}], y in [0, {height - 1}].")
    tags = np.ones(arr.shape[:-1], np.int64) if labels is None else np.asarray(labels)
    if tags.shape != arr.shape[:-1]:
        raise ConfigError(f"{name}: {tags.size} labels for {arr.shape[-2]} points; give one label per point.")
    if not np.isin(tags, (0, 1)).all():
        raise ConfigError(f"Point labels for {name} must be 1 (polyp) or 0 (not polyp); got {sorted(set(tags.ravel().tolist()))}.")
    return arr, tags.astype(np.int64)


def _torch_loader(name: str):
    model, processor = load_model_and_processor(name)
    return route_single_masks(model), processor


def _onnx_loader(quantized: bool):
    def load(name: str):
        if not Path(name).is_dir():
            raise ConfigError(f"The ONNX backend reads a local folder with onnx/ in it; {name} is not a folder. "
                              "Write one with `polyp-sam export --onnx`.")
        return OnnxSam(name, quantized=quantized), SamProcessor.from_pretrained(name)
    return load


# how a model folder is run: its PyTorch weights, or its exported ONNX graphs (float32 or int8)
BACKENDS = {"torch": _torch_loader, "onnx": _onnx_loader(False), "onnx-int8": _onnx_loader(True)}


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
                        mask_prompt: str | None = None, backend: str = "torch") -> "PolypSegmenter":
        """Load from a Hub id, a local folder or a built-in model name (see `load_model_and_processor`);
        `backend` (`BACKENDS`): "torch", or the folder's ONNX graphs under ONNX Runtime, "onnx" (float32)
        or "onnx-int8" (`models.onnx_runtime`; on the CPU)."""
        model, processor = lookup(BACKENDS, backend, "backend")(name)
        return cls(model, processor, "cpu" if backend != "torch" and device is None else device, mask_prompt)

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
    def low_res_logits(self, embedded: ImageEmbedding, boxes: np.ndarray | None = None,
                       points: np.ndarray | None = None, labels: np.ndarray | None = None,
                       previous: torch.Tensor | None = None) -> torch.Tensor:
        """(K, h, w) low-resolution logits of one frame for its prompts in original pixels: (K, 4)
        boxes, and/or (K, N, 2) points with (K, N) labels; `previous` (1, h, w), the last prediction's
        low-resolution logits, is the dense prompt of a correction round. No box and no point: (1, h, w)
        with no prompt at all (a model trained with `--prompt_mode none` marks every polyp it finds)."""
        inputs = {"image_embeddings": embedded.embedding[None]}
        prompts: dict = {"mask_prompt": self.mask_prompt}
        if boxes is not None:
            prompts["boxes"] = torch.from_numpy(scale_boxes(boxes, embedded.original, embedded.reshaped))[None]
        if points is not None:
            prompts["points"] = torch.from_numpy(scale_points(points, embedded.original, embedded.reshaped))[None]
            prompts["labels"] = torch.as_tensor(np.asarray(labels), dtype=torch.int64)[None]
        if previous is not None:
            prompts["previous"] = previous[None]
        prompts = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in prompts.items()}
        return decode(self.model, inputs, **prompts)[0]

    def to_frame(self, low_res: torch.Tensor, embedded: ImageEmbedding) -> torch.Tensor:
        """(K, h, w) low-resolution logits -> (K, H, W) logits at the frame's size (`to_original`)."""
        return to_original(low_res, self.input_size, embedded.reshaped, embedded.original)

    @torch.no_grad()
    def logits(self, embedded: ImageEmbedding, boxes: np.ndarray | None, points: np.ndarray | None = None,
               labels: np.ndarray | None = None) -> torch.Tensor:
        """(K, H, W) mask logits at the original size for (K, 4) boxes in original pixels (and/or
        (K, N, 2) points with (K, N) labels); with neither, (1, H, W) with no prompt at all."""
        return self.to_frame(self.low_res_logits(embedded, boxes, points, labels), embedded)

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

    @torch.no_grad()
    def session_logits(self, embedded: ImageEmbedding, boxes: np.ndarray | list | None = None,
                       clicks: list[tuple[float, float, int]] | None = None, name: str = "image",
                       rounds: dict | None = None) -> torch.Tensor:
        """(K, H, W) logits at the frame's size for prompts given as a person gives them, one after the
        other, and as the evaluation clicker and correction-round training give them: each box first
        alone (with the model's own mask prompt), then its clicks one round at a time, each round with
        the clicks so far and the previous round's low-resolution logits as the dense prompt. With
        boxes, a click corrects the box it falls in or lies nearest (`nearest_box`); with none, the
        clicks are one prompt of their own (K = 1).

        Args:
            boxes: K boxes `[x0, y0, x1, y1]` in pixels, or None.
            clicks: `(x, y, label)` in pixels in the order given: label 1 on polyp, 0 on what is not.
            rounds: a dict kept for one frame: each round's logits by its prompts, so a session that
                grows by one click costs one decoder call (the app keeps one per frame).

        Raises:
            ConfigError: no prompt, or a box or click the frame cannot hold (`checked_prompts`).
        """
        clicks = [tuple(click) for click in clicks or []]
        points, labels = ([c[:2] for c in clicks], [c[2] for c in clicks]) if clicks else (None, None)
        boxes, points, labels = self.checked_prompts(embedded, boxes, points, labels, name)
        rounds = {} if rounds is None else rounds
        if points is None:
            if boxes is None or len(boxes) > 1:  # several boxes: one decoder call (one mask prompt for the frame)
                return self.logits(embedded, boxes)
            # one box: kept as the round its first click starts from, so that click costs one decoder call
            key = (tuple(boxes.ravel().tolist()), ())
            if key not in rounds:
                rounds[key] = self.low_res_logits(embedded, boxes)
            return self.to_frame(rounds[key], embedded)
        points, labels = points[0], labels[0]  # one list of clicks, in order
        owner = np.zeros(len(points), int) if boxes is None else np.array([nearest_box(x, y, boxes) for x, y in points])
        low_res = []
        for k in range(1 if boxes is None else len(boxes)):
            box = None if boxes is None else boxes[k:k + 1]
            previous, mine = None, np.flatnonzero(owner == k)
            for j in range(0 if box is not None else 1, len(mine) + 1):  # j clicks so far (0: the box alone)
                key = (None if box is None else tuple(box.ravel().tolist()),
                       tuple((*points[i].tolist(), int(labels[i])) for i in mine[:j]))
                if key not in rounds:
                    rounds[key] = self.low_res_logits(embedded, box, points[mine[:j]][None] if j else None,
                                                      labels[mine[:j]][None] if j else None, previous=previous)
                previous = rounds[key]
            low_res.append(previous)
        return self.to_frame(torch.cat(low_res), embedded)

    def predict(self, image, boxes: np.ndarray | list | None = None, points: np.ndarray | list | None = None,
                labels: np.ndarray | list | None = None, name: str = "image") -> np.ndarray:
        """Masks for a frame's prompts: (K, H, W) bool at the frame's size (`to_mask` of the logits).

        Args:
            boxes: K boxes `[x0, y0, x1, y1]` in pixels, or None.
            points: (N, 2) clicks `[x, y]` in pixels in the order a person gave them, or None: each a
                correction round on the last mask (`session_logits`); with boxes, each corrects the box
                it falls in or lies nearest; with none, they are one prompt of their own.
            labels: one per click, 1 on polyp and 0 on what is not (default: all 1).
        """
        return self.masks(self.embed(image), boxes, name, points, labels)

    def masks(self, embedded: ImageEmbedding, boxes=None, name: str = "image", points=None, labels=None) -> np.ndarray:
        """`predict` for a frame already embedded (several prompts, one encoder pass)."""
        return to_mask(self.prompted_logits(embedded, boxes, points, labels, name)).cpu().numpy()

    def predict_proba(self, image, boxes=None, points=None, labels=None, name: str = "image") -> np.ndarray:
        """Polyp probabilities for a frame's prompts (as `predict`): (K, H, W) float32 in [0, 1]."""
        return torch.sigmoid(self.prompted_logits(self.embed(image), boxes, points, labels, name)).cpu().numpy()

    def prompted_logits(self, embedded: ImageEmbedding, boxes=None, points=None, labels=None,
                        name: str = "image") -> torch.Tensor:
        """(K, H, W) logits for `predict`'s prompts, checked against the frame first.

        Raises:
            ConfigError: no prompt, a box or point the frame cannot hold, or clicks not given as one list.
        """
        height, width = embedded.original
        if points is None:
            return self.logits(embedded, *self.checked_prompts(embedded, boxes, None, None, name))
        points, labels = validate_points(points, labels, width, height, name)
        if points.ndim != 2:
            raise ConfigError(f"{name}: give the clicks as one list [[x, y], ...] in the order they were made; each "
                              "corrects the box it falls in or lies nearest.")
        clicks = [(float(x), float(y), int(label)) for (x, y), label in zip(points, labels)]
        return self.session_logits(embedded, boxes, clicks, name)

    @staticmethod
    def checked_prompts(embedded: ImageEmbedding, boxes, points, labels, name: str
                        ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """A frame's prompts checked against it (`validate_boxes`, `validate_points`) and shaped as
        `logits` takes them: (K, 4) boxes, (K, N, 2) points, (K, N) labels.

        Raises:
            ConfigError: no prompt at all, or a box or point the frame cannot hold (the message says which).
        """
        height, width = embedded.original
        if boxes is None and points is None:
            raise ConfigError(f"No prompt for {name}: give a box (x0,y0,x1,y1) or a point (x,y) in pixels.")
        boxes = None if boxes is None else validate_boxes(boxes, width, height, name)
        if points is None:
            return boxes, None, None
        points, labels = validate_points(points, labels, width, height, name)
        prompts = 1 if boxes is None else len(boxes)
        if points.ndim == 2:  # one list of clicks: the one prompt's, or every box's
            points, labels = np.repeat(points[None], prompts, 0), np.repeat(labels[None], prompts, 0)
        elif len(points) != prompts:
            raise ConfigError(f"{name}: {len(points)} lists of points for {prompts} boxes; give one list per box, "
                              "or one list for them all.")
        return boxes, points, labels
