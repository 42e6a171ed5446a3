"""Using a checkpoint on new frames: one image embedding, any number of box prompts.

    seg = PolypSegmenter.from_pretrained("runs/table2-b-full/best")
    masks = seg.predict(Image.open("frame.png"), [[120, 80, 310, 260]])   # (1, H, W) bool
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from polyp_sam_hf.data.prompts import AUTO_BOX_MARGIN, component_boxes, grow_box
from polyp_sam_hf.data.reading import read_image, to_rgb
from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.models.mask_prompts import mask_prompt_logits, mask_prompt_name
from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.models.postprocess import logits_to_original
from polyp_sam_hf.data.preprocessing import Preprocessing


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
        ValueError: a box is not 4 numbers, has x1 <= x0 or y1 <= y0, or lies outside the frame;
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
    def logits(self, embedded: ImageEmbedding, boxes: np.ndarray) -> torch.Tensor:
        """(K, H, W) mask logits at the original size for (K, 4) boxes in original pixels."""
        height, width = embedded.original
        scale = np.array([embedded.reshaped[1] / width, embedded.reshaped[0] / height] * 2, np.float32)
        input_boxes = torch.from_numpy(np.asarray(boxes, np.float32) * scale)[None].to(self.device)
        masks = mask_prompt_logits(self.model, input_boxes, torch.ones(input_boxes.shape[:2], dtype=torch.bool,
                                                                       device=self.device), self.mask_prompt)
        out = self.model(image_embeddings=embedded.embedding[None], input_boxes=input_boxes,
                         multimask_output=False, **({} if masks is None else {"input_masks": masks}))
        return logits_to_original(out.pred_masks[0, :, 0], self.input_size, embedded.reshaped, embedded.original)

    @torch.no_grad()
    def free_logits(self, embedded: ImageEmbedding) -> torch.Tensor:
        """(1, H, W) mask logits at the original size with no prompt at all (prompt-free mode: a model
        trained with `--prompt_mode none` marks every polyp it finds)."""
        out = self.model(image_embeddings=embedded.embedding[None], multimask_output=False)
        return logits_to_original(out.pred_masks[0, :, 0], self.input_size, embedded.reshaped, embedded.original)

    @torch.no_grad()
    def auto_logits(self, embedded: ImageEmbedding, rounds: int = 1, margin: float = AUTO_BOX_MARGIN
                    ) -> tuple[torch.Tensor | None, np.ndarray]:
        """Self-prompting: the prompt-free mask, split into polyps (8-connected components of at least
        10 pixels), each one's box grown by `margin`, then SAM prompted with those boxes, all on the
        one image embedding; `rounds` > 1 repeats from the last round's mask.

        Returns:
            ((K, H, W) logits of the K self-made boxes at the original size, or None when nothing
            was found; the (K, 4) boxes).
        """
        height, width = embedded.original
        mask = (self.free_logits(embedded) > 0).any(0).cpu().numpy()
        logits, boxes = None, np.zeros((0, 4), np.float32)
        for _ in range(rounds):
            found = [grow_box(b, margin, width, height) for b in component_boxes(mask)]
            if not found:
                break
            boxes = np.asarray(found, np.float32)
            logits = self.logits(embedded, boxes)
            mask = (logits > 0).any(0).cpu().numpy()
        return logits, boxes

    def predict(self, image, boxes, name: str = "image") -> np.ndarray:
        """Masks for each box: (K, H, W) bool at the frame's size (logits thresholded at 0)."""
        return self.masks(self.embed(image), boxes, name)

    def masks(self, embedded: ImageEmbedding, boxes, name: str = "image") -> np.ndarray:
        """`predict` for a frame already embedded (several prompts, one encoder pass)."""
        boxes = validate_boxes(boxes, embedded.original[1], embedded.original[0], name)
        return (self.logits(embedded, boxes) > 0).cpu().numpy()

    def predict_proba(self, image, boxes, name: str = "image") -> np.ndarray:
        """Polyp probabilities for each box: (K, H, W) float32 in [0, 1]."""
        embedded = self.embed(image)
        boxes = validate_boxes(boxes, embedded.original[1], embedded.original[0], name)
        return torch.sigmoid(self.logits(embedded, boxes)).cpu().numpy()
