"""Image embeddings computed once for a frozen encoder, stored on disk, shared by epochs and runs.

With the `decoder` strategy the image encoder never changes, so running it every epoch is waste:
for ViT-B it is nearly all of a training step. The cache holds one fp16 (C, h, w) embedding per
frame in a memory-mapped file (see `array_cache`), so reading it costs no memory growth with the
dataset.

The cache folder is named by a fingerprint of everything the embeddings depend on: the encoder's
weights, the image preprocessing settings, the attention implementation, the code's versions, and
the frames (source/image_id and each split's content fingerprint).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import numpy as np
import torch
import transformers
from accelerate import Accelerator
from transformers import SamModel, SamProcessor

from polyp_sam_hf.data.array_cache import ArrayCache, cache_keys
from polyp_sam_hf.data.preprocessing import Preprocessing
from polyp_sam_hf.data.reading import to_rgb
from polyp_sam_hf.models.attention import vision_attention_of


def model_fingerprint(encoder: torch.nn.Module) -> str:
    """sha256 of the encoder's parameter and buffer names, shapes, dtypes and values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


CACHE_FORMAT = 2  # bump when what an entry holds changes for the same inputs


def _encoder_settings(encoder: torch.nn.Module, processor: SamProcessor, attn_implementation: str | None) -> bytes:
    """Every setting the embeddings' bytes depend on: the encoder's weight fingerprint first, then the rest."""
    settings = {"preprocessing": Preprocessing.of(processor).key(), "format": CACHE_FORMAT,
                "attention": attn_implementation, "transformers": transformers.__version__,
                "torch": torch.__version__}
    return model_fingerprint(encoder).encode() + json.dumps(settings, sort_keys=True, default=str).encode()


@torch.no_grad()
def build_embedding_cache(
    model: SamModel,
    processor: SamProcessor,
    splits: list[datasets.Dataset],
    root: str | Path,
    accelerator: Accelerator,
    batch_size: int = 8,
) -> ArrayCache:
    """Open the embedding cache for these frames under `root`, computing it first if needed.

    Args:
        model: a SamModel (or one with LoRA adapters); only its image encoder runs.
        processor: the SamProcessor whose image settings preprocess the frames.
        splits: the dataset splits whose frames to embed.
        root: the folder that holds caches, one sub-folder per fingerprint.
        accelerator: divides the frames among processes and synchronises them.
        batch_size: frames per encoder call.
    """
    encoder = model.vision_encoder
    attention = getattr(model.config, "_attn_implementation", None)
    vision = vision_attention_of(model)
    if vision is not None:  # a SAM ViT: which attention computed the embeddings
        attention = f"{attention}/{vision}"
    key, reuse_key = cache_keys(_encoder_settings(encoder, processor, attention), splits)
    folder = Path(root) / f"embeddings-{key}"
    device = accelerator.device
    prep = Preprocessing.of(processor)

    def embed(rows: list[dict]) -> np.ndarray:
        pixels, _ = prep.pixel_values([to_rgb(row["image"]) for row in rows], device)
        return model.get_image_embeddings(pixels).float().cpu().numpy().astype(np.float16)

    vision = model.config.vision_config
    grid = vision.image_size // vision.patch_size
    shape = (vision.output_channels, grid, grid)  # what get_image_embeddings returns per frame
    was_training = encoder.training
    encoder.eval()
    try:
        return ArrayCache.build(folder, splits, embed, shape, np.float16, accelerator, batch_size,
                                desc="Caching image embeddings", reuse_key=reuse_key)
    finally:
        encoder.train(was_training)
