"""`polyp-sam evaluate` end to end on a checkpoint of ours."""

from __future__ import annotations

import csv
import json

import datasets
import pytest

from polyp_sam_hf.cli import main as cli_main
from polyp_sam_hf.inference import PolypSegmenter
from polyp_sam_hf.published import table_rows


@pytest.fixture(scope="module")
def evaluated(micro_checkpoint, prepared_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "out"
    calls = {"n": 0}
    real = PolypSegmenter.embed_batch

    def counting(self, images):
        calls["n"] += len(images)
        return real(self, images)

    PolypSegmenter.embed_batch = counting
    try:
        code = cli_main(["evaluate", "--model", str(micro_checkpoint), "--data", str(prepared_demo),
                         "--output", str(out), "--box-jitter", "0,0.1", "--save-masks", "--figures"])
    finally:
        PolypSegmenter.embed_batch = real
    assert code == 0
    return out, calls["n"], datasets.load_from_disk(str(prepared_demo))["test"]


def test_each_frame_is_embedded_once(evaluated):
    _, embedded, split = evaluated
    assert embedded == len(split)  # 2 prompt modes x 2 jitter levels, one encoder run a frame


SOURCES = ("kvasir", "cvc-clinicdb", "cvc-colondb", "etis", "cvc-300")


def test_metrics_json(evaluated):
    out, _, split = evaluated
    metrics = json.loads((out / "metrics.json").read_text())
    sources = set(split["source"])
    assert set(metrics["sources"]) == sources
    for source, entry in metrics["sources"].items():
        assert entry["n"] == split["source"].count(source) and 0 <= entry["dice"] <= 1
    results = metrics["results"]
    assert set(results) == {"model", "box", "ellipse"}
    assert set(results["model"]) == {"single", "per-component"}
    assert set(results["model"]["single"]) == {"0.0", "0.1"}
    assert metrics["settings"]["protocol"] == "paper"


def test_per_image_csv_matches_metrics(evaluated):
    out, _, split = evaluated
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == len(split) * 2 * 2 * 3  # frames x modes x jitter levels x (model + 2 baselines)
    metrics = json.loads((out / "metrics.json").read_text())
    kvasir = [float(r["dice"]) for r in rows if r["method"] == "model" and r["prompt_mode"] == "single"
              and float(r["box_jitter"]) == 0 and r["source"] == "kvasir"]
    assert sum(kvasir) / len(kvasir) == pytest.approx(metrics["sources"]["kvasir"]["dice"])


def test_results_md_shows_table_2_beside_the_run(evaluated):
    out, _, split = evaluated
    text = (out / "results.md").read_text()
    assert "split `paper`" in text  # read from the prepared dataset's record
    for row in table_rows(2):
        cells = [c for s in SOURCES for c in (f"{row.values[s][0]:.3f}", f"{row.values[s][1]:.3f}")]
        assert f"| {row.label} | published, Table 2 | {'yes' if row.strategy else 'no'} | " + " | ".join(cells) in text
    for name in ("Kvasir-SEG", "CVC-ClinicDB", "CVC-ColonDB", "ETIS-LaribPolypDB", "CVC-300"):
        assert f"{name} Dice" in text
    assert "(single box) | this library" in text and "(per-component box) | this library" in text
    for mode in ("single", "per-component"):  # each model row has the baselines of its own prompt mode
        assert f"ellipse from the same boxes ({mode} box)" in text and f"box from the same boxes ({mode} box)" in text
    # a random tiny model has no Polyp-SAM row: no difference, and a sentence saying why
    assert "difference to" not in text and "not fine-tuned from SAM ViT-B or ViT-L" in text


def test_masks_plots_and_figures(evaluated):
    out, _, split = evaluated
    masks = sorted((out / "masks").rglob("*.png"))
    assert len(masks) == len(split)
    from PIL import Image

    row = split[0]
    assert Image.open(out / "masks" / row["source"] / f"{row['image_id']}.png").size == (row["width"], row["height"])
    assert (out / "dice_vs_jitter.png").stat().st_size > 1000
    assert len(list((out / "figures").glob("*.png"))) == len(set(split["source"]))


def test_baselines_are_scored_on_the_same_boxes(evaluated):
    out, _, _ = evaluated
    metrics = json.loads((out / "metrics.json").read_text())
    # exact whole-mask boxes: the filled box covers every polyp, so its Dice is below the ellipse
    # on lobed shapes only by shape, never 0
    assert 0.3 < metrics["results"]["box"]["single"]["0.0"]["all"]["dice"] < 1
    assert metrics["results"]["ellipse"]["single"]["0.1"]["all"]["dice"] != metrics["results"]["ellipse"]["single"]["0.0"]["all"]["dice"]


def test_empty_mask_frames_are_named_and_in_no_mean(micro_checkpoint, pranet_root, tmp_path):
    """A test frame with nothing annotated scores Dice 1 for any method that predicts nothing:
    counted in a mean it would lift every method alike, so it is left out and named."""
    import numpy as np
    from conftest import write_pair

    write_pair(pranet_root / "TestDataset" / "CVC-300", "999", np.zeros((32, 40), dtype=bool))
    out = tmp_path / "eval"
    assert cli_main(["evaluate", "--model", str(micro_checkpoint), "--data", str(pranet_root),
                     "--output", str(out), "--prompt-mode", "single"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["empty_mask_frames"] == ["cvc-300/999"]
    rows = [r for r in csv.DictReader(open(out / "per_image.csv")) if r["method"] == "ellipse" and r["source"] == "cvc-300"]
    scored = {r["image_id"]: float(r["dice"]) for r in rows}
    assert scored["999"] == 1.0  # empty ground truth, empty ellipse (no box): scored one by one
    kept = [d for i, d in scored.items() if i != "999"]
    cvc300 = metrics["results"]["ellipse"]["single"]["0.0"]["cvc-300"]
    assert cvc300["n"] == 2 and cvc300["dice"] == pytest.approx(sum(kept) / len(kept))
    text = (out / "results.md").read_text()
    assert "1 test frames have an empty mask and are in no mean" in text and "cvc-300/999" in text
