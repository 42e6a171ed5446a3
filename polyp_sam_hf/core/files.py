"""Files the library writes and checks: replacing a folder so that a crash never leaves it
half-written (checkpoints, `best/`, the prepared dataset and the upload folder all go through
`replace_atomically`), and the SHA-256 that identifies weights and downloaded checkpoints."""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`); False where the
    system or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def restore_replaced(final: Path) -> None:
    """Undo a replacement cut off between its two renames: `final` missing, `.final.old` present."""
    old = final.with_name(f".{final.name}.old")
    if old.exists() and not final.exists():
        os.replace(old, final)
        logger.warning("Restored %s from %s, left by an interrupted save", final, old.name)


def staging_folder(final: Path, tag: str = "tmp") -> Path:
    """The sibling `.NAME.TAG` a folder is written into before `replace_atomically` puts it in
    place, emptied of what an interrupted write left there."""
    staging = final.with_name(f".{final.name}.{tag}")
    if staging.exists():
        shutil.rmtree(staging)
    return staging


def replace_atomically(tmp: Path, final: Path) -> None:
    """Put `tmp` in place of `final`.

    Where the system can swap two paths atomically (Linux), `final` is always either the old or
    the new folder. Elsewhere the old folder is first renamed to `.final.old`: a crash between the
    two renames leaves `final` only as `.final.old`, which `restore_replaced` (called by every save
    and by resuming) puts back.
    """
    restore_replaced(final)
    if final.exists() and _exchange(tmp, final):
        shutil.rmtree(tmp)  # now the old folder
        return
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def sha256_file(path: str | Path) -> str:
    """The hex SHA-256 of a file, read in 4 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()
