"""The ellipse mask prompt: its geometry, and that a model trained with it is prompted with it
everywhere (validation, the test report, `evaluate`, `PolypSegmenter`) because best/ records it."""

import json
import math

import datasets
import pytest
import torch
from conftest import train_args

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.evaluation.baselines import ellipse_mask
from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.models.mask_prompts import (
    CONFIG_KEY,
    ELLIPSE_LOGIT,
    ellipse_mask_prompt,
    mask_prompt_logits,
    mask_prompt_name,
    set_mask_prompt,
)


@pytest.mark.parametrize("box", [(10, 12, 40, 30), (3.4, 7.9, 50.2, 21.6), (0, 0, 63, 63), (20, 20, 21, 26)])
def test_the_mask_prompt_and_the_baseline_draw_one_ellipse(box):
    # on a grid of one cell per pixel, the prompt's cell centres are pixel centres: a box whose
    # outer pixel edges are those of the baseline's inclusive-max box gives the same pixels
    x0, y0, x1, y1 = box
    prompt = ellipse_mask_prompt(torch.tensor([[[x0 - 0.5, y0 - 0.5, x1 + 0.5, y1 + 0.5]]]) + 0.5,
                                 torch.tensor([[True]]), 64, 64)[0, 0] > 0
    assert (prompt.numpy() == ellipse_mask(box, 64, 64)).all()


def test_ellipse_prompt_is_the_inscribed_ellipse_of_each_valid_box():
    # input 1024, grid 256: a cell is 4 px; box 1 centred (300, 400), radii 100 x 60; box 2 is padding
    boxes = torch.tensor([[[200.0, 340.0, 400.0, 460.0], [600.0, 600.0, 900.0, 900.0]]])
    prompt = ellipse_mask_prompt(boxes, torch.tensor([[True, False]]), 1024, 256)
    assert prompt.shape == (1, 1, 256, 256)
    assert set(prompt.unique().tolist()) == {-ELLIPSE_LOGIT, ELLIPSE_LOGIT}
    inside = prompt[0, 0] > 0
    assert inside.sum().item() == pytest.approx(math.pi * 100 * 60 / 16, rel=0.02)
    assert inside[400 // 4, 300 // 4] and not inside[340 // 4, 200 // 4]  # centre in, corner out
    assert not inside[750 // 4, 750 // 4]  # the padding box draws nothing
    both = ellipse_mask_prompt(boxes, torch.tensor([[True, True]]), 1024, 256)[0, 0] > 0
    assert both[750 // 4, 750 // 4] and (both & ~inside).sum() > 0 and (inside & ~both).sum() == 0


def test_the_setting_is_read_from_the_config_and_unknown_ones_are_named():
    model, _ = load_model_and_processor("tiny-sam")
    assert mask_prompt_name(model) == "none"
    assert mask_prompt_logits(model, torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool)) is None
    set_mask_prompt(model, "ellipse")
    grid = 4 * (model.config.prompt_encoder_config.image_size // model.config.prompt_encoder_config.patch_size)
    boxes = torch.tensor([[[10.0, 20.0, 60.0, 90.0]]])
    assert mask_prompt_logits(model, boxes, torch.ones(1, 1, dtype=torch.bool)).shape == (1, 1, grid, grid)
    with pytest.raises(ConfigError, match="ellipse"):
        set_mask_prompt(model, "circle")
    setattr(model.config, CONFIG_KEY, "circle")  # a config written by a newer release, say
    with pytest.raises(ConfigError, match="circle"):
        mask_prompt_name(model)


def test_prompt_logits_gives_the_model_its_mask_prompt():
    from polyp_sam_hf.models.segmenter import batch_logits

    model, _ = load_model_and_processor("tiny-sam")
    model.eval()
    size = model.config.vision_config.image_size
    grid = model.config.prompt_encoder_config.image_size // model.config.prompt_encoder_config.patch_size
    torch.manual_seed(0)
    batch = {"image_embeddings": torch.randn(1, model.config.vision_config.output_channels, grid, grid),
             "input_boxes": torch.tensor([[[10.0, 20.0, 60.0, 90.0]]]), "box_valid": torch.ones(1, 1, dtype=torch.bool)}
    plain = batch_logits(model, batch)
    set_mask_prompt(model, "ellipse")
    prompted = batch_logits(model, batch)
    ellipse = ellipse_mask_prompt(batch["input_boxes"], batch["box_valid"], size, 4 * grid)
    direct = model(image_embeddings=batch["image_embeddings"], input_boxes=batch["input_boxes"],
                   input_masks=ellipse, multimask_output=False).pred_masks[:, :, 0]
    torch.testing.assert_close(prompted, direct)
    assert (prompted - plain).abs().max() > 0.1 * plain.abs().max()  # the mask prompt changes the masks


@pytest.fixture(scope="module")
def ellipse_run(prepared_demo, tmp_path_factory):
    """A three-step run of the micro model trained with the ellipse mask prompt, test report included."""
    from polyp_sam_hf.training.config import parse_config
    from polyp_sam_hf.training.loop import train

    out = tmp_path_factory.mktemp("ellipse-run") / "run"
    train(*parse_config(train_args(prepared_demo, out, "--max_train_steps", "3", "--mask_prompt", "ellipse",
                                   "--evaluate_test", "true")))
    return out


def test_a_model_trained_with_the_ellipse_is_evaluated_with_it(ellipse_run, prepared_demo, tmp_path):
    """best/ records the prompt; the run's test report and `evaluate` (which reads it) score the same
    Dice, and `--mask_prompt none` scores the same model differently."""
    from polyp_sam_hf.models.segmenter import PolypSegmenter

    out = ellipse_run
    assert json.loads((out / "best" / "config.json").read_text())[CONFIG_KEY] == "ellipse"
    assert PolypSegmenter.from_pretrained(str(out / "best"), device="cpu").mask_prompt == "ellipse"
    reported = json.loads((out / "test_results.json").read_text())

    results = {}
    for flag in ([], ["--mask_prompt", "none"]):
        folder = tmp_path / ("eval-" + (flag[-1] if flag else "own"))
        assert cli_main(["evaluate", "--model_name_or_path", str(out / "best"), "--data", str(prepared_demo), "--output_dir",
                         str(folder), "--prompt_mode", "box", *flag]) == 0
        results[folder.name] = json.loads((folder / "metrics.json").read_text())
    own, none = results["eval-own"], results["eval-none"]
    assert own["settings"]["mask_prompt"] == "ellipse" and none["settings"]["mask_prompt"] == "none"
    assert "mask prompt (`ellipse`" in (tmp_path / "eval-own" / "results.md").read_text()
    assert "mask prompt" not in (tmp_path / "eval-none" / "results.md").read_text()
    test = datasets.load_from_disk(str(prepared_demo))["test"]
    assert own["all"]["n"] == len(test)
    assert set(own["sources"]) == set(reported["sources"])
    for source, row in reported["sources"].items():
        assert own["sources"][source]["dice"] == pytest.approx(row["dice"], abs=1e-6), source
    assert abs(own["all"]["dice"] - none["all"]["dice"]) > 1e-4



@pytest.mark.slow
def test_the_cards_plain_transformers_snippet_gives_the_librarys_mask(ellipse_run, tmp_path):
    """The model card of such a model shows plain `transformers` users how to give the ellipse; its
    snippet, run as written, gives the mask `PolypSegmenter` gives (and without the ellipse it would not)."""
    import re
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    import hub_upload
    from polyp_sam_hf.models.segmenter import PolypSegmenter

    export = tmp_path / "upload"
    assert hub_upload.main(["--model_name_or_path", str(ellipse_run / "best"), "--repo_id", "me/polyp-sam-b",
                            "--dry_run", str(export)]) == 0
    text = (export / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert "input_masks=input_masks" in snippet
    saved = tmp_path / "mask.npy"
    local = snippet.replace('"me/polyp-sam-b"', repr(str(export))) + f"\nnp.save({str(saved)!r}, masks.numpy())\n"
    result = subprocess.run([sys.executable, "-c", local], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    snippet_mask = np.load(saved)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8))
    ours = PolypSegmenter.from_pretrained(str(export), device="cpu")
    library_mask = ours.predict(image, [[120, 80, 400, 330]])[0]
    assert (snippet_mask != library_mask).mean() < 1e-3
    ours.mask_prompt = "none"
    assert (ours.predict(image, [[120, 80, 400, 330]])[0] != library_mask).any()
    # the click snippet after it: a correction round on the box's logits, as the library gives one
    box_snippet, click_snippet = re.findall(r"```python\n(.*?)```", text, re.S)[:2]
    assert "input_points" in click_snippet and "input_masks=outputs.pred_masks" in click_snippet
    local = (box_snippet + click_snippet).replace('"me/polyp-sam-b"', repr(str(export))) + \
        f"\nnp.save({str(saved)!r}, masks.numpy())\n"
    result = subprocess.run([sys.executable, "-c", local], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ours = PolypSegmenter.from_pretrained(str(export), device="cpu")
    clicked = ours.predict(image, [[120, 80, 400, 330]], points=[[260, 200]], labels=[1])[0]
    assert (np.load(saved) != clicked).mean() < 1e-3
