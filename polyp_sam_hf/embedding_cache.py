"""Image embeddings computed once for a frozen encoder, stored on disk, shared by epochs and runs.

With the `decoder` strategy the image encoder never changes, so running it every epoch is waste:
for ViT-B it is nearly all of a training step. The cache holds one fp16 (C, h, w) embedding per
frame in a memory-mapped `.npy` file, so reading it costs no memory growth with the dataset.

A cache folder is named by a fingerprint of everything the embeddings depend on: the encoder's
weights, the image preprocessing settings, and the frames (source/image_id and each split's
content fingerprint). A change in any of them gives another folder; nothing stale is ever read.
Frames are divided among processes; each writes its own rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import SamModel, SamProcessor

logger = logging.getLogger(__name__)

COMPLETE = "complete"


def model_fingerprint(encoder: torch.nn.Module) -> str:
    """sha256 of the encoder's parameter and buffer names, shapes, dtypes and values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_fingerprint(encoder: torch.nn.Module, processor, splits: list[datasets.Dataset]) -> str:
    """The cache key: encoder weights + preprocessing settings + frames."""
    digest = hashlib.sha256(model_fingerprint(encoder).encode())
    settings = processor.image_processor.to_dict()
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for split in splits:
        digest.update(split._fingerprint.encode())
        digest.update("\n".join(_keys(split)).encode())
    return digest.hexdigest()[:24]


def _keys(split: datasets.Dataset) -> list[str]:
    return [f"{s}/{i}" for s, i in zip(split["source"], split["image_id"])]


class EmbeddingCache:
    """Read access to a complete cache: `cache["kvasir/cju0..."]` -> (C, h, w) fp16 tensor."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / COMPLETE).is_file():
            raise ValueError(f"Embedding cache {self.folder} is incomplete; delete it to rebuild.")
        self.index: dict[str, int] = json.loads((self.folder / "index.json").read_text())
        self._array: np.ndarray | None = None  # opened lazily: DataLoader workers open their own

    def __len__(self) -> int:
        return len(self.index)

    def __call__(self, key: str) -> torch.Tensor:
        if self._array is None:
            self._array = np.load(self.folder / "embeddings.npy", mmap_mode="r")
        return torch.from_numpy(np.array(self._array[self.index[key]]))

    def __getstate__(self):  # pickled into workers without the open memory map
        return {**self.__dict__, "_array": None}

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        model: SamModel,
        processor: SamProcessor,
        splits: list[datasets.Dataset],
        root: str | Path,
        accelerator: Accelerator,
        batch_size: int = 8,
    ) -> "EmbeddingCache":
        """Open the cache for these frames, computing it first if it does not exist.

        Args:
            model: a SamModel (or one wrapped by peft); only its `vision_encoder` runs.
            processor: the SamProcessor whose image settings preprocess the frames.
            splits: the dataset splits whose frames to embed.
            root: the folder that holds caches, one sub-folder per fingerprint.
            accelerator: divides the frames among processes and synchronises them.
            batch_size: frames per encoder call.
        """
        encoder = model.vision_encoder
        folder = Path(root) / cache_fingerprint(encoder, processor, splits)
        if (folder / COMPLETE).is_file():
            if accelerator.is_main_process:
                logger.info("Reusing image embeddings from %s", folder)
            return cls(folder)
        rows = [(split, i) for split in splits for i in range(len(split))]
        keys = [key for split in splits for key in _keys(split)]
        index = {key: n for n, key in enumerate(dict.fromkeys(keys))}
        device = accelerator.device
        if accelerator.is_main_process:
            folder.mkdir(parents=True, exist_ok=True)
            shape = _embedding_shape(model, processor, splits[0][0]["image"], device)
            np.lib.format.open_memmap(
                folder / "embeddings.npy", mode="w+", dtype=np.float16, shape=(len(index), *shape)
            ).flush()
            (folder / "index.json").write_text(json.dumps(index))
        accelerator.wait_for_everyone()
        array = np.load(folder / "embeddings.npy", mmap_mode="r+")
        mine = list(range(accelerator.process_index, len(rows), accelerator.num_processes))
        bar = tqdm(total=len(mine), desc="Caching image embeddings", unit="img",
                   disable=not accelerator.is_local_main_process)
        was_training = encoder.training
        encoder.eval()
        for start in range(0, len(mine), batch_size):
            chunk = [rows[n] for n in mine[start : start + batch_size]]
            images = [split[i]["image"] for split, i in chunk]
            pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
            embeddings = model.get_image_embeddings(pixels.to(device))
            for (n, emb) in zip(mine[start : start + batch_size], embeddings):
                array[index[keys[n]]] = emb.float().cpu().numpy().astype(np.float16)
            bar.update(len(chunk))
        bar.close()
        encoder.train(was_training)
        array.flush()
        del array
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (folder / COMPLETE).write_text("ok\n")
            logger.info("Cached %d image embeddings in %s", len(index), folder)
        accelerator.wait_for_everyone()
        return cls(folder)


def _embedding_shape(model, processor, image, device) -> tuple[int, ...]:
    pixels = processor.image_processor(image, return_tensors="pt")["pixel_values"]
    return tuple(model.get_image_embeddings(pixels.to(device)).shape[1:])
