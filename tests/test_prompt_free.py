"""Prompt-free mode (`--prompt_mode none`): SAM's decoder with no box or point, trained to mark
every polyp; evaluated with detection numbers, and marked in the tables as given no box."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import train_args

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.training import loop as training
from polyp_sam_hf.training.config import parse_config


@pytest.mark.parametrize("strategy", ["decoder", "lora", "full"])  # decoder: from the embedding cache
def test_prompt_free_training_never_gives_the_model_a_box(strategy, prepared_demo, tmp_path, monkeypatch):
    calls = []
    real = training.batch_logits

    def spy(model, batch):
        calls.append(batch.get("prompt_free"))
        return real(model, batch)

    monkeypatch.setattr(training, "batch_logits", spy)
    seen = {}
    from transformers import SamModel

    real_forward = SamModel.forward

    def forward(self, *args, **kwargs):
        seen.setdefault("boxes", []).append(kwargs.get("input_boxes"))
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(SamModel, "forward", forward)
    out = tmp_path / "run"
    result = training.train(*parse_config(train_args(prepared_demo, out, "--strategy", strategy, "--prompt_mode", "none",
                                                     "--max_train_steps", "3", "--box_jitter", "0.2",
                                                     "--evaluate_test", "true")))
    assert calls and all(calls)  # every training and validation batch was prompt-free
    assert seen["boxes"] and all(b is None for b in seen["boxes"])  # the model never got a box
    assert result["steps"] == 3 and (out / "best" / "model.safetensors").is_file()
    # the test report at the end: the model's row, given no box, and no box-only baseline
    assert "(no box) | this library | no |" in result["test"]["table"] and "ellipse" not in result["test"]["table"]
    assert all("ellipse_dice" not in e and 0 <= e["recall"] <= 1 for e in result["test"]["sources"].values())


def test_evaluate_none_beside_boxes(micro_checkpoint, prepared_demo, tmp_path):
    out = tmp_path / "eval"
    assert cli_main(["evaluate", "--model_name_or_path", str(micro_checkpoint), "--data", str(prepared_demo), "--output_dir", str(out),
                     "--prompt_mode", "box,none", "--box_jitter", "0,0.1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    results = metrics["results"]
    assert set(results["model"]) == {"box", "none"}
    assert set(results["model"]["none"]) == {"0.0"}  # no box: nothing to jitter
    assert "none" not in results["ellipse"] and "none" not in results["box"]  # no box-only baseline without a box
    entry = results["model"]["none"]["0.0"]["all"]
    assert 0 <= entry["recall"] <= 1 and entry["fp_per_frame"] >= 0
    text = (out / "results.md").read_text()
    assert "| **run/best** (no box) | this library | no |" in text
    assert "| **run/best** (one box) | this library | yes |" in text
    assert "Detection: polyps found (recall)" in text and "(no box) | no |" in text


def test_per_image_rows_carry_detection_counts(micro_checkpoint, prepared_demo, tmp_path):
    """Each per-image row's polyps / found / false positives equal `detection_counts` of the saved
    mask against the ground truth, recomputed here."""
    import csv

    import datasets
    from PIL import Image

    from polyp_sam_hf.evaluation.metrics import detection_counts

    out = tmp_path / "eval"
    assert cli_main(["evaluate", "--model_name_or_path", str(micro_checkpoint), "--data", str(prepared_demo), "--output_dir", str(out),
                     "--prompt_mode", "none", "--save_masks"]) == 0
    rows = {(r["source"], r["image_id"]): r for r in csv.DictReader(open(out / "per_image.csv"))}
    for row in datasets.load_from_disk(str(prepared_demo))["test"]:
        pred = np.asarray(Image.open(out / "masks" / row["source"] / f"{row['image_id']}.png")) > 0
        truth = np.asarray(row["mask"]) > 127
        got = rows[(row["source"], row["image_id"])]
        assert (int(got["polyps"]), int(got["found"]), int(got["false_positives"])) == detection_counts(pred, truth)
        assert int(got["polyps"]) >= 1


def test_free_logits_cover_the_frame(micro_checkpoint):
    from polyp_sam_hf.models.segmenter import PolypSegmenter

    segmenter = PolypSegmenter.from_pretrained(str(micro_checkpoint), device="cpu")
    logits = segmenter.logits(segmenter.embed(np.zeros((40, 56, 3), np.uint8)), None)
    assert logits.shape == (1, 40, 56) and torch.isfinite(logits).all()


def test_self_prompting_uses_one_embedding_and_its_own_boxes(micro_checkpoint, prepared_demo, tmp_path, monkeypatch):
    """`auto`: the prompt-free mask's components become boxes (grown by the margin) that prompt the
    model on the same embedding; the encoder runs once per frame for every mode together."""
    from polyp_sam_hf.data.prompts import AUTO_BOX_MARGIN, component_boxes, grow_box
    from polyp_sam_hf.models.segmenter import PolypSegmenter

    segmenter = PolypSegmenter.from_pretrained(str(micro_checkpoint), device="cpu")
    embedded = segmenter.embed(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    free = (segmenter.logits(embedded, None) > 0).any(0).cpu().numpy()
    logits, boxes = segmenter.auto_logits(embedded)
    expected = [grow_box(b, AUTO_BOX_MARGIN, 64, 48) for b in component_boxes(free)]
    np.testing.assert_allclose(boxes, np.asarray(expected, np.float32).reshape(-1, 4))
    if len(boxes):
        torch.testing.assert_close(logits, segmenter.logits(embedded, boxes))
    else:
        assert logits is None

    calls = {"n": 0}
    real = PolypSegmenter.embed_batch

    def counting(self, images):
        calls["n"] += len(images)
        return real(self, images)

    monkeypatch.setattr(PolypSegmenter, "embed_batch", counting)
    out = tmp_path / "eval"
    assert cli_main(["evaluate", "--model_name_or_path", str(micro_checkpoint), "--data", str(prepared_demo), "--output_dir", str(out),
                     "--prompt_mode", "box,none,auto"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert calls["n"] == metrics["all"]["n"]  # one encoder pass per frame for all three modes
    auto = metrics["results"]["model"]["auto"]["0.0"]["all"]
    assert 0 <= auto["nothing_found"] <= auto["n"]
    assert "auto" in metrics["results"]["ellipse"]  # box-only baselines on the self-made boxes
    text = (out / "results.md").read_text()
    assert "(self-made boxes) | this library | no |" in text and "ellipse from the same boxes (self-made boxes) | box only | no |" in text
    assert f"on {auto['nothing_found']} frames the prompt-free pass found nothing" in text


@pytest.mark.parametrize("mode", ["none", "auto"])
def test_predict_without_a_box(mode, micro_checkpoint, tmp_path):
    from PIL import Image

    frame = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(frame)
    assert cli_main(["predict", "--model_name_or_path", str(micro_checkpoint), "--image", str(frame), "--output_dir",
                     str(tmp_path / "out"), "--prompt_mode", mode]) == 0
    mask = np.asarray(Image.open(tmp_path / "out" / "frame_mask.png"))
    assert mask.shape == (48, 64) and set(np.unique(mask)) <= {0, 255}
    assert (tmp_path / "out" / "frame_overlay.png").is_file()


def test_predict_without_a_box_in_box_mode_says_what_to_do(micro_checkpoint, tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (20, 20)).save(tmp_path / "f.png")
    assert cli_main(["predict", "--model_name_or_path", str(micro_checkpoint), "--image", str(tmp_path / "f.png"),
                     "--output_dir", str(tmp_path / "o")]) == 1
    assert "--prompt_mode auto or none" in capsys.readouterr().err


def test_rows_without_a_box_come_first_then_rows_given_one(micro_checkpoint, prepared_demo, tmp_path):
    """The fair comparisons sit together: every row found without the true box (U-Net ... HSNet, our
    `none` and `auto`) before every row given it (Polyp-SAM, our box modes, box-only baselines)."""
    out = tmp_path / "eval"
    assert cli_main(["evaluate", "--model_name_or_path", str(micro_checkpoint), "--data", str(prepared_demo), "--output_dir", str(out),
                     "--prompt_mode", "box,none,auto"]) == 0
    main = (out / "results.md").read_text().split("Detection:")[0].split("**Beside Table 3")[0]  # the main table
    table = [line for line in main.splitlines()
             if line.startswith("| ") and not line.startswith("| Method")]
    given = [line.split(" | ")[2].strip() for line in table]
    given = [g for g in given if g]  # difference and margin rows have none
    assert given == sorted(given)  # "no" ... then "yes" ...
    assert given.count("no") >= 7 + 2 and "yes" in given
    first_yes = next(i for i, line in enumerate(table) if " | yes | " in line)
    assert all("| HSNet |" not in line for line in table[first_yes:])
    assert any("(no box)" in line for line in table[:first_yes]) and any("Polyp-SAM-B" in line for line in table[first_yes:])


def test_a_second_auto_round_starts_from_the_first_rounds_mask(micro_checkpoint):
    from polyp_sam_hf.data.prompts import AUTO_BOX_MARGIN, component_boxes, grow_box
    from polyp_sam_hf.models.segmenter import PolypSegmenter

    segmenter = PolypSegmenter.from_pretrained(str(micro_checkpoint), device="cpu")
    embedded = segmenter.embed(np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    first, first_boxes = segmenter.auto_logits(embedded, rounds=1)
    second, second_boxes = segmenter.auto_logits(embedded, rounds=2)
    if first is None:
        assert second is None and len(second_boxes) == 0
        return
    mask = (first > 0).any(0).cpu().numpy()
    expected = [grow_box(b, AUTO_BOX_MARGIN, 64, 48) for b in component_boxes(mask)]
    if expected:
        np.testing.assert_allclose(second_boxes, np.asarray(expected, np.float32))
    else:  # the first round's boxes gave an empty mask: nothing more to prompt with
        np.testing.assert_allclose(second_boxes, first_boxes)


def _speck_and_polyp_root(tmp_path):
    """A PraNet root whose test frames hold one polyp (8 x 8 px) and a 6-pixel speck apart from it."""
    from conftest import blob_mask, write_pair

    root = tmp_path / "specks"
    for i in range(4):
        write_pair(root / "TrainDataset", str(30 * (i + 1)), blob_mask(32, 40, [(4, 4, 14, 14)]))
    mask = blob_mask(32, 40, [(4, 4, 11, 11), (30, 25, 32, 26)])  # 64 px and 6 px
    write_pair(root / "TestDataset" / "Kvasir", "100", mask)
    return root


@pytest.mark.parametrize("area, polyps", [(None, 1), ("5", 2)])
def test_the_prepared_minimum_polyp_area_reaches_the_detection_counts(area, polyps, micro_checkpoint, tmp_path):
    """`prepare --min_polyp_area` decided the boxes only; evaluation counted polyps with its own 10 px."""
    import csv

    root, data, out = _speck_and_polyp_root(tmp_path), tmp_path / "data", tmp_path / "eval"
    assert cli_main(["prepare", "--data_root", str(root), "--output_dir", str(data), "--val_fraction", "0.25",
                     *(["--min_polyp_area", area] if area else [])]) == 0
    assert cli_main(["evaluate", "--model_name_or_path", str(micro_checkpoint), "--data", str(data),
                     "--output_dir", str(out), "--prompt_mode", "box"]) == 0
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert {int(r["polyps"]) for r in rows} == {polyps}


def test_self_made_boxes_leave_out_specks_below_the_minimum_area(micro_checkpoint):
    """The prompt-free mask's components become boxes only from `min_area` pixels up."""
    from polyp_sam_hf.models.segmenter import PolypSegmenter

    segmenter = PolypSegmenter.from_pretrained(str(micro_checkpoint), device="cpu")
    embedded = segmenter.embed(np.zeros((32, 40, 3), np.uint8))
    free = torch.full((1, 32, 40), -5.0)
    free[0, 4:12, 4:12] = 5.0  # 64 px
    free[0, 25:27, 30:33] = 5.0  # 6 px
    real = segmenter.logits
    segmenter.logits = lambda emb, boxes: free if boxes is None else real(emb, boxes)
    assert len(segmenter.auto_logits(embedded, min_area=10)[1]) == 1
    assert len(segmenter.auto_logits(embedded, min_area=5)[1]) == 2
