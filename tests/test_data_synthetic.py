"""The synthetic demo data: deterministic, in the PraNet layout, and not given away by the box."""

from __future__ import annotations

import numpy as np
import pytest

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.data.layouts import discover
from polyp_sam_hf.data.prompts import component_boxes, polyp_prompts
from polyp_sam_hf.data.reading import read_mask
from polyp_sam_hf.data.synthetic import synth_frame, write_demo_data
from polyp_sam_hf.evaluation.baselines import baseline_prediction
from polyp_sam_hf.evaluation.metrics import dice_iou


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = write_demo_data(tmp_path / "a", num_train=4, num_test=1, seed=3)
    b = write_demo_data(tmp_path / "b", num_train=4, num_test=1, seed=3)
    c = write_demo_data(tmp_path / "c", num_train=4, num_test=1, seed=4)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    same_name = "TestDataset/CVC-300/images/1.png"  # exists whatever the seed
    assert (a / same_name).read_bytes() != (c / same_name).read_bytes()


def test_demo_data_is_a_pranet_root_with_both_training_sources(demo_root):
    found = discover(demo_root)
    assert found.layout == "pranet" and not found.skipped
    train_sources = {p.source for p in found.pairs if p.group == "train"}
    assert train_sources == {"kvasir", "cvc-clinicdb"}
    assert len({p.source for p in found.pairs if p.group == "test"}) == 5


def test_frames_look_like_frames():
    image, mask = synth_frame(np.random.default_rng(0), num_polyps=3)
    assert image.shape == (224, 256, 3) and image.dtype == np.uint8
    assert 0.01 < mask.mean() < 0.5
    # red-dominant tissue, darker corners (vignetting), a few saturated highlights
    assert image[..., 0].mean() > image[..., 1].mean() > 0
    assert image[:10, :10].mean() < image[100:120, 118:138].mean()
    assert (image.min(axis=-1) >= 250).any()


@pytest.mark.slow
def test_ellipse_baseline_stays_under_085_on_default_demo_data(tmp_path):
    root = write_demo_data(tmp_path / "demo")  # the defaults the demo config trains on
    scores, multi = [], 0
    for mask_path in sorted(root.rglob("masks/*.png")):
        mask = read_mask(mask_path)
        multi += len(component_boxes(mask)) > 1
        pred = baseline_prediction("ellipse", [polyp_prompts(mask)[0]], *mask.shape)
        scores.append(dice_iou(pred, mask)[0])
    assert np.mean(scores) <= 0.85
    assert multi >= 0.1 * len(scores)  # frames with several polyps are common


def test_cli_demo_data(tmp_path, capsys):
    assert cli_main(["demo-data", "--output_dir", str(tmp_path / "d"), "--num_train", "2",
                     "--num_test", "1"]) == 0
    assert len(list((tmp_path / "d").rglob("images/*.png"))) == 7
