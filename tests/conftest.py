"""Shared fixtures: offline mode, small synthetic dataset folders, the real samples, a tiny SAM."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("POLYP_SAMPLES", REPO_ROOT.parent / "shared" / "polyp-samples"))


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def samples_root() -> Path:
    """The real polyp samples; the test is skipped where the folder is not beside the checkout."""
    if not SAMPLES.is_dir():
        pytest.skip(f"real polyp samples not found at {SAMPLES} (set POLYP_SAMPLES to point there)")
    return SAMPLES


def blob_mask(height: int, width: int, boxes) -> np.ndarray:
    """A boolean mask with one filled rectangle per inclusive box (x0, y0, x1, y1)."""
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def write_pair(folder: Path, stem: str, mask: np.ndarray, ext: str = ".png", image_ext=None):
    """Write an RGB image and its 0/255 mask named `stem` under folder/{images,masks}."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    h, w = mask.shape
    rng = np.random.default_rng(zlib.crc32(stem.encode()))
    image = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    Image.fromarray(image).save(folder / "images" / f"{stem}{image_ext or ext}")
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "masks" / f"{stem}{ext}")


KVASIR_IDS = [
    "cju0qkwl35piu0993l0dewei2",
    "cju0roawvklrq0799vmjorwfv",
    "cju0rx1idathl0835detmsp84",
    "cju0s2a9ekvms080138tjjpxr",
    "cju0s690hkp960855tjuaqvv0",
]


@pytest.fixture
def pranet_root(tmp_path: Path) -> Path:
    """A small PraNet-layout root: 5 Kvasir + 5 ClinicDB training pairs, 2 per test set."""
    root = tmp_path / "pranet"
    train = root / "TrainDataset"
    for i, kid in enumerate(KVASIR_IDS):
        write_pair(train, kid, blob_mask(40, 48, [(5 + i, 6, 20, 30)]))
    for i in range(5):
        write_pair(train, str(i + 1), blob_mask(36, 36, [(3, 4 + i, 12, 20)]))
    for name in ("Kvasir", "CVC-ClinicDB", "CVC-ColonDB", "ETIS-LaribPolypDB", "CVC-300"):
        for j in range(2):
            write_pair(root / "TestDataset" / name, f"{100 + j}", blob_mask(32, 40, [(2, 3, 9, 11)]))
    return root


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The default demo data, written once for the session."""
    from polyp_sam_hf.data.synthetic import write_demo_data

    return write_demo_data(tmp_path_factory.mktemp("demo") / "data", num_train=24, num_test=3)
