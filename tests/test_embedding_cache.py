"""The embedding cache: right values, reused, invalidated by any change, same training."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from conftest import train_args
from safetensors.torch import load_file

from polyp_sam_hf.data.array_cache import ArrayCache
from polyp_sam_hf.models.embedding_cache import build_embedding_cache
from polyp_sam_hf.models.loading import load_model_and_processor, processor_for
from polyp_sam_hf.training.config import parse_config
from polyp_sam_hf.training.loop import train


@pytest.fixture
def splits(prepared_demo):
    ds = datasets.load_from_disk(str(prepared_demo))
    return [ds["train"], ds["validation"]]


def test_cached_values_equal_the_encoder(splits, tmp_path):
    model, processor = load_model_and_processor("micro-sam-test")
    cache = build_embedding_cache(model, processor, splits, tmp_path, Accelerator(cpu=True), batch_size=3)
    assert len(cache) == len(splits[0]) + len(splits[1])
    row = splits[1][1]
    pixels = processor.image_processor(row["image"], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        direct = model.get_image_embeddings(pixels)[0]
    cached = cache(f"{row['source']}/{row['image_id']}")
    assert cached.dtype == torch.float16 and cached.shape == direct.shape
    torch.testing.assert_close(cached.float(), direct, atol=2e-3, rtol=2e-3)


def test_second_build_reuses_without_running_the_encoder(splits, tmp_path, monkeypatch):
    model, processor = load_model_and_processor("micro-sam-test")
    first = build_embedding_cache(model, processor, splits, tmp_path, Accelerator(cpu=True))

    def must_not_run(*args, **kwargs):
        raise AssertionError("the encoder ran although the cache was complete")

    monkeypatch.setattr(model, "get_image_embeddings", must_not_run)
    second = build_embedding_cache(model, processor, splits, tmp_path, Accelerator(cpu=True))
    assert second.folder == first.folder


def test_any_change_gives_another_cache(splits, tmp_path):
    model, processor = load_model_and_processor("micro-sam-test")
    acc = Accelerator(cpu=True)
    base = build_embedding_cache(model, processor, splits, tmp_path, acc).folder
    other_model, _ = load_model_and_processor("micro-sam-test", seed=1)  # other weights
    assert build_embedding_cache(other_model, processor, splits, tmp_path, acc).folder != base
    other_processor = processor_for(model.config)
    other_processor.image_processor.image_mean = [0.5, 0.5, 0.5]  # other preprocessing
    assert build_embedding_cache(model, other_processor, splits, tmp_path, acc).folder != base
    fewer = [splits[0].select(range(4)), splits[1]]  # other frames
    assert build_embedding_cache(model, processor, fewer, tmp_path, acc).folder != base
    resized = processor_for(model.config)
    resized.image_processor.size = {"longest_edge": 24}  # frames resized smaller inside the same 32 px input
    assert build_embedding_cache(model, resized, splits, tmp_path, acc).folder != base
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 5  # and lock files


def test_pixel_cache_key_follows_the_processor(splits, tmp_path):
    from polyp_sam_hf.data.pixel_cache import build_pixel_cache

    _, processor = load_model_and_processor("micro-sam-test")
    acc = Accelerator(cpu=True)
    base = build_pixel_cache(processor, splits, tmp_path, acc).folder
    def variant(name, value):
        other = processor_for(load_model_and_processor("micro-sam-test")[0].config)
        setattr(other.image_processor, name, value)
        return build_pixel_cache(other, splits, tmp_path, acc).folder

    # what changes the cached uint8 bytes gives another cache
    assert variant("size", {"longest_edge": 24}) != base
    assert variant("resample", 0) != base  # nearest: once read as "unset" and keyed as bilinear
    # the normalisation runs after the cache, on the device: no rebuild for it
    assert variant("image_std", [0.5, 0.5, 0.5]) == base


def test_incomplete_cache_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError, match="incomplete"):
        ArrayCache(tmp_path / "x")


def test_training_with_and_without_cache_agree(prepared_demo, tmp_path):
    common = ("--strategy", "decoder", "--max_train_steps", "2", "--cache_dir", str(tmp_path / "cache"))
    train(*parse_config(train_args(prepared_demo, tmp_path / "cached", *common)))
    train(*parse_config(train_args(prepared_demo, tmp_path / "plain", *common, "--embedding_cache", "false")))
    cached = load_file(str(tmp_path / "cached" / "checkpoints" / "step-0000002" / "model.safetensors"))
    plain = load_file(str(tmp_path / "plain" / "checkpoints" / "step-0000002" / "model.safetensors"))
    for key in plain:  # fp16 storage of the embeddings is the only difference
        torch.testing.assert_close(cached[key], plain[key], atol=2e-3, rtol=1e-2, msg=key)
    assert any(tmp_path.joinpath("cache").iterdir())


BUILDER = """
import sys, time
import datasets, numpy as np
from accelerate import Accelerator
from polyp_sam_hf.data.array_cache import ArrayCache

folder, log = sys.argv[1], sys.argv[2]
split = datasets.Dataset.from_dict({"source": ["kvasir"] * 6, "image_id": [str(i) for i in range(6)],
                                    "image": [float(i) for i in range(6)]})

def compute(rows):
    with open(log, "a") as f:
        f.write("".join(str(int(r["image"])) for r in rows) + "\\n")
    time.sleep(0.5)  # long enough for the other run to arrive while this one builds
    return np.stack([np.full((2, 3), r["image"], np.float32) for r in rows])

cache = ArrayCache.build(folder, [split], compute, (2, 3), np.float32, Accelerator(cpu=True), batch_size=2)
print(sorted(float(cache(f"kvasir/{i}")[0, 0]) for i in range(6)))
"""


@pytest.mark.slow
def test_two_runs_building_one_cache_at_once_build_it_once(tmp_path):
    """Two runs that share a cache folder: one builds (under a lock, in a temporary folder renamed
    into place), the other waits and reuses it; nobody reads a half-written file."""
    import subprocess
    import sys

    script = tmp_path / "build.py"
    script.write_text(BUILDER)
    folder, log = tmp_path / "cache" / "embeddings-x", tmp_path / "computed.log"
    runs = [subprocess.Popen([sys.executable, str(script), str(folder), str(log)], stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate()[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert all(out.strip().endswith("[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]") for out in outputs)
    computed = "".join(log.read_text().split())
    assert sorted(computed) == list("012345")  # every frame computed exactly once
    assert sorted(p.name for p in folder.parent.iterdir() if not p.name.startswith(".")) == ["embeddings-x"]
    assert not list(folder.parent.glob("*.building"))


def test_an_interrupted_build_resumes_without_recomputing_written_frames(tmp_path):
    """A build killed part-way keeps the rows it wrote; the next build computes only the others."""
    split = datasets.Dataset.from_dict({"source": ["kvasir"] * 6, "image_id": [str(i) for i in range(6)],
                                        "image": [float(i) for i in range(6)]})
    computed: list[int] = []

    def compute(rows, fail_after=None):
        if fail_after is not None and len(computed) >= fail_after:
            raise KeyboardInterrupt  # the user pressed Ctrl-C
        computed.extend(int(r["image"]) for r in rows)
        return np.stack([np.full((2, 3), r["image"], np.float32) for r in rows])

    folder = tmp_path / "cache" / "embeddings-x"
    with pytest.raises(KeyboardInterrupt):
        ArrayCache.build(folder, [split], lambda rows: compute(rows, fail_after=4), (2, 3), np.float32,
                         Accelerator(cpu=True), batch_size=2)
    assert computed == [0, 1, 2, 3] and not folder.exists()
    cache = ArrayCache.build(folder, [split], compute, (2, 3), np.float32, Accelerator(cpu=True), batch_size=2)
    assert computed == [0, 1, 2, 3, 4, 5]  # 0-3 were not computed again
    assert [float(cache(f"kvasir/{i}")[0, 0]) for i in range(6)] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_cache_of_other_frames_borrows_the_frames_a_sibling_holds(tmp_path):
    """Another split of the same frames (another validation draw) computes only the frames no cache of
    the same kind holds; a frame whose bytes changed under the same name is computed again."""
    def split(ids, images):
        return datasets.Dataset.from_dict({"source": ["kvasir"] * len(ids), "image_id": ids, "image": images})

    computed: list[str] = []

    def compute(rows):
        computed.extend(str(r["image"]) for r in rows)
        return np.stack([np.full((2, 3), float(r["image"]), np.float32) for r in rows])

    root = tmp_path / "cache"
    ArrayCache.build(root / "emb-a", [split(["0", "1", "2"], [0.0, 1.0, 2.0])], compute, (2, 3), np.float32,
                     Accelerator(cpu=True), reuse_key="encoder-x")
    assert computed == ["0.0", "1.0", "2.0"]
    computed.clear()
    # frames 1 and 2 again (2 with new bytes), and a new frame 3
    cache = ArrayCache.build(root / "emb-b", [split(["1", "2", "3"], [1.0, 7.0, 3.0])], compute, (2, 3), np.float32,
                             Accelerator(cpu=True), reuse_key="encoder-x")
    assert sorted(computed) == ["3.0", "7.0"]
    assert [float(cache(f"kvasir/{i}")[0, 0]) for i in ("1", "2", "3")] == [1.0, 7.0, 3.0]
    computed.clear()
    ArrayCache.build(root / "emb-c", [split(["1"], [1.0])], compute, (2, 3), np.float32, Accelerator(cpu=True),
                     reuse_key="encoder-y")  # another encoder: nothing to borrow
    assert computed == ["1.0"]
