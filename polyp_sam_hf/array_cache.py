"""Per-frame arrays computed once, stored in one memory-mapped `.npy` file, read lazily.

Two caches use it: image embeddings of a frozen encoder (`embedding_cache`), and frames already
resized and padded to the encoder's input as uint8 (`pixel_cache`). A cache folder is named by a
fingerprint of everything its arrays depend on, so a change gives another folder and nothing stale
is read. Frames are divided among processes; each writes its own rows into the shared file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

COMPLETE = "complete"


def frame_keys(split: datasets.Dataset) -> list[str]:
    """`source/image_id` of every row, in order."""
    return [f"{s}/{i}" for s, i in zip(split["source"], split["image_id"])]


def frames_fingerprint(splits: list[datasets.Dataset]) -> str:
    """sha256 over each split's content fingerprint and its frame keys."""
    digest = hashlib.sha256()
    for split in splits:
        digest.update(split._fingerprint.encode())
        digest.update("\n".join(frame_keys(split)).encode())
    return digest.hexdigest()


class ArrayCache:
    """Read access to a complete cache: `cache["kvasir/cju0..."]` -> tensor of the stored dtype."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / COMPLETE).is_file():
            raise ValueError(f"Cache {self.folder} is incomplete; delete it to rebuild.")
        self.index: dict[str, int] = json.loads((self.folder / "index.json").read_text())
        self._array: np.ndarray | None = None  # opened lazily: DataLoader workers open their own

    def __len__(self) -> int:
        return len(self.index)

    def __call__(self, key: str) -> torch.Tensor:
        """The frame's array as a tensor over the mapped file: no bytes are read or copied until it
        is used (collated or normalised), and writes to it stay private (copy-on-write)."""
        if self._array is None:
            self._array = np.load(self.folder / "arrays.npy", mmap_mode="c")
        return torch.from_numpy(self._array[self.index[key]])

    def __getstate__(self):  # pickled into workers without the open memory map
        return {**self.__dict__, "_array": None}

    @classmethod
    def build(
        cls,
        folder: str | Path,
        splits: list[datasets.Dataset],
        compute: Callable[[list], np.ndarray],
        shape: tuple[int, ...],
        dtype: np.dtype,
        accelerator: Accelerator,
        batch_size: int = 8,
        desc: str = "Caching",
        columns: tuple[str, ...] = ("image",),
    ) -> "ArrayCache":
        """Open the cache in `folder`, computing it first if it is not complete.

        Args:
            folder: this cache's own folder (its name is the caller's fingerprint).
            splits: the frames to cache, keyed `source/image_id`.
            compute: a list of rows (dicts holding `columns`) -> array of shape (len, *shape).
            shape: one frame's array shape.
            dtype: the stored dtype.
            accelerator: divides the frames among processes and synchronises them.
            batch_size: frames per `compute` call.
            desc: the progress bar's label.
            columns: the columns `compute` reads (others are not decoded).
        """
        folder = Path(folder)
        if (folder / COMPLETE).is_file():
            if accelerator.is_main_process:
                logger.info("Reusing %s", folder)
            return cls(folder)
        readable = [split.select_columns(list(columns)) for split in splits]
        rows = [(split, i) for split in readable for i in range(len(split))]
        keys = [key for split in splits for key in frame_keys(split)]
        index = {key: n for n, key in enumerate(dict.fromkeys(keys))}
        if accelerator.is_main_process:
            folder.mkdir(parents=True, exist_ok=True)
            np.lib.format.open_memmap(folder / "arrays.npy", mode="w+", dtype=dtype,
                                      shape=(len(index), *shape)).flush()
            (folder / "index.json").write_text(json.dumps(index))
        accelerator.wait_for_everyone()
        array = np.load(folder / "arrays.npy", mmap_mode="r+")
        mine = list(range(accelerator.process_index, len(rows), accelerator.num_processes))
        with tqdm(total=len(mine), desc=desc, unit="img", disable=not accelerator.is_local_main_process) as bar:
            for start in range(0, len(mine), batch_size):
                chunk = mine[start : start + batch_size]
                values = compute([rows[n][0][rows[n][1]] for n in chunk])
                for n, value in zip(chunk, values):
                    array[index[keys[n]]] = value
                bar.update(len(chunk))
        array.flush()
        del array
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (folder / COMPLETE).write_text("ok\n")
            logger.info("Cached %d frames in %s", len(index), folder)
        accelerator.wait_for_everyone()
        return cls(folder)
