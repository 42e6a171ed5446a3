"""Per-frame arrays computed once, stored in one memory-mapped `.npy` file, read lazily.

Two caches use it: image embeddings of a frozen encoder (`embedding_cache`), and frames already
resized and padded to the encoder's input as uint8 (`pixel_cache`). A cache folder is named by a
fingerprint of everything its arrays depend on, so a change gives another folder and nothing stale
is read. Frames are divided among processes; each writes its own rows into the shared file. A
build happens in a temporary folder renamed into place when complete, under a lock file, so two
runs sharing a cache folder never write the same file at once (the second waits and reuses). A
build that was interrupted resumes: the temporary folder records which rows are written
(`done.npy`, flushed after every batch), and only the others are computed. A new cache of the
same kind (`reuse_key`: the same encoder and settings, other frames: another split, another
validation fraction) copies the rows of frames a complete sibling cache already holds, matched by
key and by a digest of the frame's stored bytes (`frames.json`), and computes only the rest. On
several nodes without a shared file system each node builds its own copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from filelock import FileLock
from tqdm.auto import tqdm

from polyp_sam_hf.core.errors import CheckpointError
from polyp_sam_hf.data.sources import frame_key

logger = logging.getLogger(__name__)

COMPLETE = "complete"


def frame_keys(split: datasets.Dataset) -> list[str]:
    """`source/image_id` of every row, in order."""
    return [frame_key(s, i) for s, i in zip(split["source"], split["image_id"])]


def frames_fingerprint(splits: list[datasets.Dataset]) -> str:
    """sha256 over each split's content fingerprint and its frame keys."""
    digest = hashlib.sha256()
    for split in splits:
        digest.update(split._fingerprint.encode())
        digest.update("\n".join(frame_keys(split)).encode())
    return digest.hexdigest()


def cache_keys(settings: bytes, splits: list[datasets.Dataset]) -> tuple[str, str]:
    """The one key builder of the library's caches: (the folder's key, from `settings` (every
    setting an entry's bytes depend on) and the frames; the reuse key, from the settings alone,
    shared by caches of other frames that may lend theirs)."""
    digest = hashlib.sha256(settings)
    reuse = digest.hexdigest()
    digest.update(frames_fingerprint(splits).encode())
    return digest.hexdigest()[:24], reuse


def frame_digests(splits: list[datasets.Dataset], columns: tuple[str, ...]) -> dict[str, str]:
    """`source/image_id` -> sha1 of the frame's stored bytes in `columns` (images not decoded)."""
    digests: dict[str, str] = {}
    for split in splits:
        raw = split.select_columns(list(columns))
        for name in columns:
            if isinstance(raw.features[name], datasets.Image):
                raw = raw.cast_column(name, datasets.Image(decode=False))
        for key, row in zip(frame_keys(split), raw):
            digest = hashlib.sha1()
            for name in columns:
                value = row[name]
                digest.update(value["bytes"] if isinstance(value, dict) and value.get("bytes") else
                              json.dumps(value, sort_keys=True, default=str).encode())
            digests[key] = digest.hexdigest()
    return digests


REUSE_FILE, FRAMES_FILE = "reuse.json", "frames.json"


def _copy_from_siblings(building: Path, folder: Path, reuse_key: str, digests: dict[str, str],
                        index: dict[str, int]) -> int:
    """Copy into the build the rows of frames (same key, same digest) that complete caches of the
    same `reuse_key` beside `folder` hold, and mark them written. Returns how many were copied."""
    array = np.load(building / "arrays.npy", mmap_mode="r+")
    written = np.load(building / "done.npy", mmap_mode="r+")
    copied = 0
    prefix = folder.name.split("-")[0]
    for sibling in sorted(folder.parent.glob(f"{prefix}-*")):
        if sibling == folder or not (sibling / COMPLETE).is_file() or not (sibling / REUSE_FILE).is_file():
            continue
        if json.loads((sibling / REUSE_FILE).read_text()).get("key") != reuse_key:
            continue
        theirs = json.loads((sibling / FRAMES_FILE).read_text())
        their_index = json.loads((sibling / "index.json").read_text())
        wanted = [(index[k], their_index[k]) for k, d in digests.items()
                  if not written[index[k]] and theirs.get(k) == d and k in their_index]
        if not wanted:
            continue
        source = np.load(sibling / "arrays.npy", mmap_mode="r")
        for mine, other in wanted:
            array[mine] = source[other]
        array.flush()
        written[[mine for mine, _ in wanted]] = True
        written.flush()
        copied += len(wanted)
    return copied


def _local_world(accelerator: Accelerator) -> int:
    """Processes on this machine (`LOCAL_WORLD_SIZE`, set by torchrun and accelerate launch)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))


def _shared_across_nodes(root: Path, accelerator: Accelerator) -> bool:
    """Whether every process sees the same `root` (one machine, or a shared file system): the main
    process writes a probe file named by a token it broadcasts; every process looks for it."""
    if _local_world(accelerator) == accelerator.num_processes:  # one machine
        return True


    token = broadcast_object_list([uuid.uuid4().hex if accelerator.is_main_process else None])[0]
    probe = root / f".probe-{token}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
    accelerator.wait_for_everyone()
    seen = accelerator.reduce(torch.tensor(float(probe.exists()), device=accelerator.device), reduction="min")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        probe.unlink()
    return bool(seen.item())


class ArrayCache:
    """Read access to a complete cache: `cache["kvasir/cju0..."]` -> tensor of the stored dtype."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / COMPLETE).is_file():
            raise CheckpointError(f"Cache {self.folder} is incomplete; delete it to rebuild.")
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
        reuse_key: str | None = None,
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
            reuse_key: what the arrays depend on besides the frames (encoder, settings): complete
                caches beside `folder` with the same key lend the rows of the frames they share.
        """
        folder = Path(folder)
        if (folder / COMPLETE).is_file():
            if accelerator.is_main_process:
                logger.info("Reusing %s", folder)
            return cls(folder)
        shared = _shared_across_nodes(folder.parent, accelerator)
        # who builds: the run's main process writes the file every process fills, on a file system
        # all nodes share; on nodes without one, each node's main process builds the node's copy
        builder = accelerator.is_main_process if shared else accelerator.is_local_main_process
        rank, world = ((accelerator.process_index, accelerator.num_processes) if shared else
                       (accelerator.local_process_index, _local_world(accelerator)))
        building = folder.with_name(f".{folder.name}.building")
        # another run building the same cache: wait for it, then reuse its result
        lock = FileLock(str(folder.with_name(f".{folder.name}.lock"))) if builder else None
        if lock is not None:
            folder.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        done = torch.tensor(float((folder / COMPLETE).is_file()))
        done = accelerator.reduce(done.to(accelerator.device), reduction="min").item() if accelerator.num_processes > 1 \
            else done.item()
        if done:
            if lock is not None:
                lock.release()
            return cls(folder)
        try:
            readable = [split.select_columns(list(columns)) for split in splits]
            rows = [(split, i) for split in readable for i in range(len(split))]
            keys = [key for split in splits for key in frame_keys(split)]
            index = {key: n for n, key in enumerate(dict.fromkeys(keys))}
            digests = frame_digests(splits, columns) if reuse_key and builder else {}  # only the builder copies and records
            if builder:
                _open_building(building, index, shape, dtype)
                copied = _copy_from_siblings(building, folder, reuse_key, digests, index) if reuse_key else 0
                if copied:
                    logger.info("Reused %d of %d frames from caches of the same kind beside %s", copied, len(index),
                                folder.name)
            accelerator.wait_for_everyone()
            ours = [(n, index[keys[n]]) for n in range(rank, len(rows), world)]  # (row, its slot in the file)
            _fill(building, [(rows[n], slot) for n, slot in ours], compute, batch_size,
                  desc, accelerator.is_local_main_process, folder.name)
        except BaseException:
            if lock is not None:
                lock.release()  # the written rows stay in the temporary folder for the next build
            raise
        accelerator.wait_for_everyone()
        if builder:
            _complete(building, folder, reuse_key, digests)
            lock.release()
            logger.info("Cached %d frames in %s", len(index), folder)
        accelerator.wait_for_everyone()
        return cls(folder)


def _fill(building: Path, todo: list[tuple[tuple[datasets.Dataset, int], int]], compute: Callable[[list], np.ndarray],
          batch_size: int, desc: str, show: bool, name: str) -> None:
    """Compute this process's rows (`todo`: ((split, row), slot) pairs) into the building cache, the
    slots not yet written, `batch_size` at a time; each batch is recorded as written after its rows."""
    array = np.load(building / "arrays.npy", mmap_mode="r+")
    written = np.load(building / "done.npy", mmap_mode="r+")
    left = [(row, slot) for row, slot in todo if not written[slot]]
    if show and len(left) < len(todo):
        logger.info("Resuming the build of %s: %d frames left", name, len(left))
    with tqdm(total=len(left), desc=desc, unit="img", disable=not show) as bar:
        for start in range(0, len(left), batch_size):
            chunk = left[start : start + batch_size]
            values = compute([split[i] for (split, i), _ in chunk])
            for (_, slot), value in zip(chunk, values):
                array[slot] = value
            array.flush()  # the rows first, then the record that they are written
            written[[slot for _, slot in chunk]] = True
            written.flush()
            bar.update(len(chunk))


def _complete(building: Path, folder: Path, reuse_key: str | None, digests: dict[str, str]) -> None:
    """Mark the built cache complete and put it in place under its name, in one rename."""
    if reuse_key:  # what a later cache of other frames may borrow from this one
        (building / REUSE_FILE).write_text(json.dumps({"key": reuse_key}))
        (building / FRAMES_FILE).write_text(json.dumps(digests))
    (building / COMPLETE).write_text("ok\n")
    os.replace(building, folder)  # complete or absent: never half-written under its name


def _open_building(building: Path, index: dict[str, int], shape: tuple[int, ...], dtype) -> None:
    """Make the temporary folder of a build, or keep the one an interrupted build of the same
    frames left (its written rows are reused)."""
    index_text = json.dumps(index)
    resumable = all((building / name).is_file() for name in ("arrays.npy", "done.npy", "index.json"))
    if resumable and (building / "index.json").read_text() == index_text:
        return
    if building.exists():
        shutil.rmtree(building)  # left by a build of other frames, or killed before it began
    building.mkdir(parents=True)
    np.lib.format.open_memmap(building / "arrays.npy", mode="w+", dtype=dtype, shape=(len(index), *shape)).flush()
    np.lib.format.open_memmap(building / "done.npy", mode="w+", dtype=np.bool_, shape=(len(index),)).flush()
    (building / "index.json").write_text(index_text)  # last: its presence says the folder is whole
