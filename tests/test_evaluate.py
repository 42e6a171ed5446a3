"""`polyp-sam evaluate` end to end on a checkpoint of ours."""

from __future__ import annotations

import csv
import json
import types

import datasets
import numpy as np
import pytest
import torch

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.evaluation.published import table_rows
from polyp_sam_hf.models.segmenter import PolypSegmenter


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
        code = cli_main(["evaluate", "--model_name_or_path", str(micro_checkpoint), "--data", str(prepared_demo),
                         "--output_dir", str(out), "--box_jitter", "0,0.1", "--save_masks", "--figures"])
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
    assert set(results["model"]) == {"box", "box-per-polyp"}
    assert set(results["model"]["box"]) == {"0.0", "0.1"}
    assert metrics["settings"]["protocol"] == "paper"


def test_per_image_csv_holds_each_frames_own_score(evaluated):
    """Each model row of per_image.csv is the Dice of the mask saved for that frame against its
    ground truth, recomputed here with numpy; the headline mean is their mean."""
    from PIL import Image

    out, _, split = evaluated
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == len(split) * 2 * 2 * 3  # frames x modes x jitter levels x (model + 2 baselines)
    first = {(r["source"], r["image_id"]): float(r["dice"]) for r in rows
             if r["method"] == "model" and r["prompt_mode"] == "box" and float(r["box_jitter"]) == 0}
    for row in split:
        pred = np.asarray(Image.open(out / "masks" / row["source"] / f"{row['image_id']}.png")) > 0
        truth = np.asarray(row["mask"]) > 127
        total = pred.sum() + truth.sum()
        by_hand = 1.0 if total == 0 else 2 * (pred & truth).sum() / total
        assert first[(row["source"], row["image_id"])] == pytest.approx(by_hand, abs=1e-9)
    metrics = json.loads((out / "metrics.json").read_text())
    kvasir = [d for (source, _), d in first.items() if source == "kvasir"]
    assert metrics["sources"]["kvasir"]["dice"] == pytest.approx(sum(kvasir) / len(kvasir))


def test_results_md_shows_table_2_beside_the_run(evaluated):
    out, _, split = evaluated
    text = (out / "results.md").read_text()
    assert "split `paper`" in text  # read from the prepared dataset's record
    for row in table_rows(2):
        cells = [c for s in SOURCES for c in (f"{row.values[s][0]:.3f}", f"{row.values[s][1]:.3f}")]
        assert f"| {row.label} | published, Table 2 | {'yes' if row.strategy else 'no'} | " + " | ".join(cells) in text
    for name in ("Kvasir-SEG", "CVC-ClinicDB", "CVC-ColonDB", "ETIS-LaribPolypDB", "CVC-300"):
        assert f"{name} (synthetic) Dice" in text  # the demo frames are drawn, never headed as real data
    assert "frames scored (the paper's test set)" in text and "(380)" in text
    assert "Fewer frames than the paper's test sets" in text
    assert "(one box) | this library" in text and "(box per polyp) | this library" in text
    for mode in ("one box", "box per polyp"):  # each model row has the baselines of its own prompt mode
        assert f"ellipse from the same boxes ({mode})" in text and f"box from the same boxes ({mode})" in text
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


def test_baselines_are_scored_on_the_same_boxes(micro_checkpoint, prepared_demo, monkeypatch):
    """For every frame, prompt mode and jitter level, the model and both baselines receive the very
    same boxes (jittered ones included), and jittered boxes differ from the exact ones."""
    from polyp_sam_hf.evaluation import scoring
    from polyp_sam_hf.evaluation.scoring import ScoringSettings, score_split

    seen = {"model": [], "ellipse": [], "box": []}
    segmenter = PolypSegmenter.from_pretrained(str(micro_checkpoint), device="cpu")
    real_logits, real_baseline = segmenter.logits, scoring.baseline_prediction

    def logits(embedded, boxes):
        seen["model"].append(np.asarray(boxes).copy())
        return real_logits(embedded, boxes)

    def baseline(name, boxes, height, width):
        seen[name].append(np.asarray(boxes).copy())
        return real_baseline(name, boxes, height, width)

    monkeypatch.setattr(segmenter, "logits", logits)
    monkeypatch.setattr(scoring, "baseline_prediction", baseline)
    split = datasets.load_from_disk(str(prepared_demo))["test"]
    score_split(segmenter, split, ScoringSettings(prompt_modes=("box", "box-per-polyp"), box_jitter=(0.0, 0.1)))
    assert len(seen["model"]) == len(split) * 2 * 2  # frames x prompt modes x jitter levels
    for name in ("ellipse", "box"):
        assert len(seen[name]) == len(seen["model"])
        for got, given in zip(seen[name], seen["model"]):
            np.testing.assert_array_equal(got, given)
    exact, jittered = seen["model"][0], seen["model"][1]  # frame 0, single box, levels 0 and 0.1
    assert exact.shape == jittered.shape and not np.array_equal(exact, jittered)
    assert exact.tolist() == [split[0]["box"]]


def test_empty_mask_frames_are_named_and_in_no_mean(micro_checkpoint, pranet_root, tmp_path):
    """A test frame with nothing annotated scores Dice 1 for any method that predicts nothing:
    counted in a mean it would lift every method alike, so it is left out and named."""
    import numpy as np
    from conftest import write_pair

    write_pair(pranet_root / "TestDataset" / "CVC-300", "999", np.zeros((32, 40), dtype=bool))
    out = tmp_path / "eval"
    assert cli_main(["evaluate", "--model_name_or_path", str(micro_checkpoint), "--data", str(pranet_root),
                     "--output_dir", str(out), "--prompt_mode", "box"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["empty_mask_frames"] == ["cvc-300/999"]
    rows = [r for r in csv.DictReader(open(out / "per_image.csv")) if r["method"] == "ellipse" and r["source"] == "cvc-300"]
    scored = {r["image_id"]: float(r["dice"]) for r in rows}
    assert scored["999"] == 1.0  # empty ground truth, empty ellipse (no box): scored one by one
    kept = [d for i, d in scored.items() if i != "999"]
    cvc300 = metrics["results"]["ellipse"]["box"]["0.0"]["cvc-300"]
    assert cvc300["n"] == 2 and cvc300["dice"] == pytest.approx(sum(kept) / len(kept))
    text = (out / "results.md").read_text()
    assert "1 test frames have an empty mask and are in no mean" in text and "cvc-300/999" in text


class _ConstantDecoder(torch.nn.Module):
    """The micro model's encoder, and a decoder that answers every box with one logit value."""

    def __init__(self, model, value):
        super().__init__()
        self.model, self.value = model, value
        self.config = model.config

    def get_image_embeddings(self, pixel_values):
        return self.model.get_image_embeddings(pixel_values)

    def forward(self, input_boxes, multimask_output=False, **_):
        low = self.config.prompt_encoder_config.image_embedding_size * 4
        batch, prompts = input_boxes.shape[:2]
        return types.SimpleNamespace(pred_masks=torch.full((batch, prompts, 1, low, low), float(self.value)))


@pytest.mark.parametrize("value", [10.0, -10.0])
def test_validation_and_evaluate_score_alike_through_their_real_paths(value, micro_checkpoint, prepared_demo):
    """Validation (training's `validation_scores`) and `evaluate` (`score_split`) run the same
    preprocessing, post-processing and scorer: fed the same known prediction (every pixel a polyp,
    or none), both give the value computed here by hand from the masks."""
    from accelerate import Accelerator

    from polyp_sam_hf.data.batches import PromptDataset, collate
    from polyp_sam_hf.evaluation.scoring import ScoringSettings, score_split, validation_scores
    from polyp_sam_hf.models.loading import load_model_and_processor

    model, processor = load_model_and_processor(str(micro_checkpoint))
    fake = _ConstantDecoder(model, value)
    split = datasets.load_from_disk(str(prepared_demo))["validation"]
    masks = [np.asarray(m) > 127 for m in split["mask"]]
    # by hand: everything predicted gives 2|G| / (|G| + H W), IoU |G| / (H W); nothing predicted gives 0
    expected_dice = np.mean([2 * m.sum() / (m.sum() + m.size) if value > 0 else 0.0 for m in masks])
    expected_iou = np.mean([m.sum() / m.size if value > 0 else 0.0 for m in masks])

    loader = torch.utils.data.DataLoader(PromptDataset(split, processor), batch_size=3, collate_fn=collate)
    validation = validation_scores(fake, loader, Accelerator(cpu=True))
    scores, _ = score_split(PolypSegmenter(fake, processor, "cpu"), split, ScoringSettings(prompt_modes=("box",)))
    model_scores = [s for s in scores if s.method == "model"]
    assert validation["n"] == len(model_scores) == len(split)
    assert validation["dice"] == pytest.approx(expected_dice, abs=1e-6)
    assert validation["miou"] == pytest.approx(expected_iou, abs=1e-6)
    assert np.mean([s.dice for s in model_scores]) == pytest.approx(expected_dice, abs=1e-6)
    assert np.mean([s.iou for s in model_scores]) == pytest.approx(expected_iou, abs=1e-6)


def test_pranet_protocol_through_the_command_line(micro_checkpoint, prepared_demo, tmp_path):
    """`--protocol pranet` reaches the scorer: each baseline frame scores PraNet's 256-threshold
    Dice of its binary mask, recomputed here, and is recorded as the run's protocol."""
    from polyp_sam_hf.evaluation.baselines import baseline_prediction
    from polyp_sam_hf.evaluation.metrics import pranet_dice_iou

    out = tmp_path / "eval"
    assert cli_main(["evaluate", "--model_name_or_path", str(micro_checkpoint), "--data", str(prepared_demo), "--output_dir",
                     str(out), "--protocol", "pranet", "--prompt_mode", "box"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["protocol"] == "pranet"
    rows = {(r["source"], r["image_id"]): float(r["dice"]) for r in csv.DictReader(open(out / "per_image.csv"))
            if r["method"] == "ellipse"}
    split = datasets.load_from_disk(str(prepared_demo))["test"]
    for row in split:
        truth = np.asarray(row["mask"]) > 127
        ellipse = baseline_prediction("ellipse", [row["box"]], *truth.shape).astype(np.float32)
        assert rows[(row["source"], row["image_id"])] == pytest.approx(pranet_dice_iou(ellipse, truth)[0], abs=1e-9)
    assert (out / "results.md").read_text().splitlines()[2].startswith("Protocol `pranet`")


def test_validation_masks_stay_on_the_cpu_when_a_batch_moves_to_the_device(prepared_demo):
    """Accelerate moves every tensor of a batch to the device; the original-size masks that frames
    are scored against are numpy, so they stay where numpy can read them (a CUDA run of train.py
    once crashed at its first validation on `np.asarray` of a device tensor). The `meta` device
    stands in for a GPU: nothing on it can reach numpy."""
    from accelerate.utils import send_to_device

    from polyp_sam_hf.data.batches import PromptDataset, collate
    from polyp_sam_hf.models.loading import load_model_and_processor

    _, processor = load_model_and_processor("tiny-sam")
    split = datasets.load_from_disk(str(prepared_demo))["validation"]
    batch = send_to_device(collate([PromptDataset(split, processor)[i] for i in range(2)]), torch.device("meta"))
    assert batch["input_boxes"].device.type == "meta"
    assert all(isinstance(mask, np.ndarray) and mask.dtype == bool for mask in batch["mask"])
