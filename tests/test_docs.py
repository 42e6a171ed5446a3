"""The documentation site builds without warnings (broken links, missing API objects)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_mkdocs_build_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "data" / "index.html").is_file()


def test_the_api_reference_lists_every_module():
    """docs/api.md names each module of the package once, so a moved or new module cannot drop out of it."""
    import re

    listed = re.findall(r"^::: (polyp_sam_hf\.[\w.]+)$", (REPO_ROOT / "docs" / "api.md").read_text(), re.M)
    package = REPO_ROOT / "polyp_sam_hf"
    modules = {".".join(p.relative_to(REPO_ROOT).with_suffix("").parts) for p in package.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py") and "hub_metric" not in p.parts}
    assert sorted(listed) == sorted(modules)


def test_documented_cache_facts_are_the_codes(prepared_demo, tmp_path):
    """The cache paths and sizes the docs and --help state are what the code writes."""
    import datasets
    from accelerate import Accelerator
    from transformers import SamConfig

    from polyp_sam_hf.data.pixel_cache import build_pixel_cache
    from polyp_sam_hf.models.embedding_cache import build_embedding_cache
    from polyp_sam_hf.models.loading import load_model_and_processor, processor_for
    from polyp_sam_hf.training.config import DataArguments

    split = datasets.load_from_disk(str(prepared_demo))["train"].select(range(2))
    processor = processor_for(SamConfig(vision_config={"image_size": 64}))
    processor.image_processor.size = {"longest_edge": 64}
    processor.image_processor.pad_size = {"height": 64, "width": 64}
    pixels = build_pixel_cache(processor, [split], tmp_path / "cache", Accelerator(cpu=True))
    entry = pixels(next(iter(pixels.index)))
    assert entry.dtype.itemsize == 1 and tuple(entry.shape) == (4, 64, 64)  # 4 x S x S bytes
    model, micro = load_model_and_processor("micro-sam-test")
    embeddings = build_embedding_cache(model, micro, [split], tmp_path / "cache", Accelerator(cpu=True))
    training_doc = (REPO_ROOT / "docs" / "training.md").read_text()
    assert pixels.folder.name.startswith("pixels-") and "OUTPUT/../cache/pixels-<fingerprint>/" in training_doc
    assert embeddings.folder.name.startswith("embeddings-") and "OUTPUT/../cache/embeddings-<fingerprint>/" in training_doc
    assert "4 x S x S bytes a frame" in training_doc
    help_text = DataArguments.__dataclass_fields__["pixel_cache"].metadata["help"]
    assert "4 x S x S bytes a frame" in help_text
    # the default cache root is OUTPUT/../cache, as documented
    from pathlib import Path

    from polyp_sam_hf.training.loop import default_cache_dir

    assert default_cache_dir("runs/x") == Path("runs/cache")
