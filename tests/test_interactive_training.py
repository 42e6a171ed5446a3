"""Training with correction rounds (`--interactive_rounds`, `--point_share`): the prompts each round
gets, the encoder once per step, the record, and an exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import train_args

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.models.segmenter import sam_of
from polyp_sam_hf.training import interactive, loop
from polyp_sam_hf.training.config import parse_config
from polyp_sam_hf.training.loop import train

ROUNDS = ["--interactive_rounds", "3", "--point_share", "0.5"]


def _run(data, out, *extra):
    return train(*parse_config(train_args(data, out, *ROUNDS, *extra)))


def test_each_round_adds_a_click_and_feeds_back_the_previous_logits(prepared_demo, tmp_path, monkeypatch):
    calls = []
    real = interactive.decode

    def spy(model, inputs, boxes=None, box_valid=None, mask_prompt=None, points=None, labels=None, previous=None):
        calls.append({"frames": len(inputs["image_embeddings"]), "box": boxes is not None,
                      "clicks": None if points is None else int((labels != interactive.PADDING_LABEL).sum(-1).max()),
                      "slots": None if points is None else points.shape[2], "previous": previous is not None})
        return real(model, inputs, boxes, box_valid, mask_prompt, points, labels, previous)

    monkeypatch.setattr(interactive, "decode", spy)
    _run(prepared_demo, tmp_path / "run", "--max_train_steps", "1")
    step = calls[-6:]  # the step's 3 rounds x 2 groups (box starts, click starts); the probe before it
    box, clicked = step[0::2], step[1::2]
    assert all(c["box"] for c in box) and not any(c["box"] for c in clicked)
    assert [c["slots"] for c in box] == [None, 2, 3] and [c["slots"] for c in clicked] == [1, 2, 3]
    assert [c["previous"] for c in box] == [False, True, True] == [c["previous"] for c in clicked]
    assert box[0]["frames"] + clicked[0]["frames"] == 4  # the batch, split by its first prompt


def test_the_encoder_runs_once_per_step_not_once_per_round(prepared_demo, tmp_path, monkeypatch):
    seen = []
    real_setup = loop.setup

    def counting_setup(*args):
        run = real_setup(*args)
        encoder = sam_of(run.model).vision_encoder
        encoder.register_forward_hook(lambda *a: seen.append(1))
        return run

    monkeypatch.setattr(loop, "setup", counting_setup)
    _run(prepared_demo, tmp_path / "run", "--max_train_steps", "2", "--eval_steps", "100")
    validation_batches = 1  # the last step is always validated: 4 validation frames at batch 4
    assert len(seen) == 2 + validation_batches


def test_correction_clicks_fall_in_the_error_and_are_seeded():
    targets = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    targets[:, :, 4:10, 4:10] = 1
    low_res = torch.full((2, 1, 4, 4), -10.0)
    low_res[1] = 10.0  # frame 1 predicts everything: its error is false polyp outside the square
    batch = {"targets": targets, "reshaped": torch.tensor([[16, 16], [16, 16]]), "index": torch.tensor([0, 1])}
    points, labels, regions = interactive._next_clicks(low_res, batch, seed=1, epoch=0, round_=0)
    (x0, y0), (x1, y1) = points
    assert labels.tolist() == [1, 0]
    assert 4 <= x0 <= 9 and 4 <= y0 <= 9 and not (4 <= x1 <= 9 and 4 <= y1 <= 9)
    again, _, _ = interactive._next_clicks(low_res, batch, seed=1, epoch=0, round_=0)
    other, _, _ = interactive._next_clicks(low_res, batch, seed=1, epoch=1, round_=0)
    assert np.array_equal(points, again) and not np.array_equal(points, other)
    # central: frame 0's click at least half the greatest depth (3) inside the missed 6 x 6 square
    central, tags, _ = interactive._next_clicks(low_res, batch, seed=1, epoch=0, round_=0, correction_click="central")
    assert tags.tolist() == [1, 0] and 5 <= central[0][0] <= 8 and 5 <= central[0][1] <= 8
    # asked for, each click's error region: frame 0 the missed square, frame 1 everything around it
    assert regions is None
    _, _, regions = interactive._next_clicks(low_res, batch, seed=1, epoch=0, round_=0, regions=True)
    square = targets[:, 0].bool().numpy()
    assert np.array_equal(regions[0], square[0]) and np.array_equal(regions[1], ~square[1])


def test_the_click_region_weight_adds_each_correction_rounds_region_loss(prepared_demo, tmp_path, monkeypatch):
    """The first step's loss (same seed and weights) with --click_region_weight 2 is the loss without it
    plus twice the region losses of its 2 correction rounds, each over the region its click was drawn in."""
    losses, regions = {}, []
    real_step, real_region = loop.step_loss, loop.click_region_loss

    def region_spy(logits, batch, clicked):
        value = real_region(logits, batch, clicked)
        regions.append((clicked, value.item()))
        return value

    for weight in ("0", "2"):
        seen = []
        monkeypatch.setattr(loop, "step_loss", lambda *a, **k: seen.append(real_step(*a, **k)) or seen[-1])
        monkeypatch.setattr(loop, "click_region_loss", region_spy)
        _run(prepared_demo, tmp_path / weight, "--max_train_steps", "1", "--click_region_weight", weight)
        losses[weight] = seen[0].item()  # the probe's: before any optimiser step
    first = regions[:2]  # the weighted run's probe: rounds 2 and 3
    assert len(regions) >= 2 and all(r.any() for r, _ in first)
    assert losses["2"] == pytest.approx(losses["0"] + 2 * sum(v for _, v in first), rel=1e-5)
    with pytest.raises(ConfigError, match="give --interactive_rounds 2 or more"):
        parse_config(["--click_region_weight", "1"])


def test_the_run_records_how_it_prompted(prepared_demo, tmp_path):
    _run(prepared_demo, tmp_path / "run", "--max_train_steps", "1")
    record = json.loads((tmp_path / "run" / "best" / "polyp_sam_training.json").read_text())
    assert (record["interactive_rounds"], record["point_share"], record["first_click"],
            record["correction_click"], record["click_region_weight"]) == (3, 0.5, "uniform", "uniform", 0.0)


def test_correction_rounds_need_one_prompt_per_frame():
    with pytest.raises(ConfigError, match="use --prompt_mode box, not box-per-polyp"):
        parse_config(["--interactive_rounds", "3", "--prompt_mode", "box-per-polyp"])
    with pytest.raises(ConfigError, match="point_share 1.5 must be in"):
        parse_config(["--point_share", "1.5"])
    with pytest.raises((ConfigError, SystemExit)):
        parse_config(["--point_share", "0.5", "--first_click", "centre"])
    with pytest.raises((ConfigError, SystemExit)):
        parse_config(["--interactive_rounds", "3", "--correction_click", "centre"])


def test_central_first_clicks_start_inside_the_polyps_centre(prepared_demo):
    """The training set's click-first items under `first_click: central` are drawn from the polyp's
    inner half: at least half its greatest depth inside the target."""
    from datasets import load_from_disk

    from polyp_sam_hf.data.batches import PromptDataset
    from polyp_sam_hf.data.clicks import depth
    from polyp_sam_hf.models.loading import load_model_and_processor

    _, processor = load_model_and_processor("tiny-sam")
    split = load_from_disk(str(prepared_demo))["train"]
    items = [PromptDataset(split, processor, point_share=1.0, first_click=kind, original_masks=False)[i]
             for kind in ("central", "uniform") for i in range(len(split))]
    share = []
    for item in items:
        inside = depth(item["targets"][0].numpy().astype(bool))
        x, y = item["first_point"].round().long().tolist()
        share.append(inside[y, x] / inside.max())
    central, uniform = share[: len(split)], share[len(split):]
    assert min(central) >= 0.45 and min(uniform) < 0.45


@pytest.mark.parametrize("strategy", ["decoder", "lora"])
def test_an_interrupted_interactive_run_resumes_exactly(strategy, prepared_demo, tmp_path):
    """Stop after 2 of 4 steps and resume: the same weights as the straight run (the clicks each step
    draws are seeded by the frame and the round, not by how far the run got)."""
    from safetensors.torch import load_file

    flags = ["--strategy", strategy, "--max_train_steps", "4", "--eval_steps", "100", "--lora_rank", "2",
             "--cache_dir", str(tmp_path / "cache")]
    _run(prepared_demo, tmp_path / "straight", *flags)
    _run(prepared_demo, tmp_path / "resumed", *flags, "--stop_after_steps", "2")
    _run(prepared_demo, tmp_path / "resumed", *flags, "--resume_from_checkpoint", "latest")
    a = load_file(str(tmp_path / "straight" / "checkpoints" / "step-0000004" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoints" / "step-0000004" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)


def test_best_weights_by_box_and_clicks(prepared_demo, tmp_path):
    """--metric_for_best_model box_and_clicks: each validation also scores 3 clicks alone; best/ is the
    step with the best mean of the two."""
    result = _run(prepared_demo, tmp_path / "run", "--max_train_steps", "4", "--eval_steps", "1",
                  "--metric_for_best_model", "box_and_clicks")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
               if "val_dice" in line]
    assert len(records) == 4 and all(0 <= r["val_clicks_dice"] <= 1 for r in records)
    for r in records:
        assert r["val_box_and_clicks"] == pytest.approx((r["val_dice"] + r["val_clicks_dice"]) / 2)
    best = max(records, key=lambda r: r["val_box_and_clicks"])
    assert (result["best_step"], result["best_metric"]) == (best["step"], "box_and_clicks")
    assert result["best_dice"] == pytest.approx(best["val_box_and_clicks"])


def test_prompt_decoder_strategy_trains_the_click_embeddings_beside_the_decoder(prepared_demo, tmp_path):
    """`--strategy prompt-decoder`: against the same run with `decoder`, the image encoder is the same
    (frozen, embeddings cached) while the positive and negative click embeddings and the mask-prompt
    convolutions have learned."""
    from safetensors.torch import load_file

    weights = {}
    for strategy in ("decoder", "prompt-decoder"):
        _run(prepared_demo, tmp_path / strategy, "--strategy", strategy, "--max_train_steps", "2",
             "--eval_steps", "100", "--cache_dir", str(tmp_path / "cache"))
        state = load_file(str(tmp_path / strategy / "checkpoints" / "step-0000002" / "model.safetensors"))
        weights[strategy] = {k.removeprefix("module."): v for k, v in state.items()}  # PromptRounds' `.module`
    a, b = weights["decoder"], weights["prompt-decoder"]
    for key in (k for k in a if k.startswith("vision_encoder.")):
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
    for key in ("prompt_encoder.point_embed.0.weight", "prompt_encoder.point_embed.1.weight",
                "prompt_encoder.mask_embed.conv1.weight"):
        assert not torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("strategy", ["full", "lora", "lora-prompt-decoder"])
def test_correction_rounds_train_the_encoder_of_a_strategy_that_trains_it(strategy, prepared_demo, tmp_path):
    """With correction rounds the loss reaches a trained image encoder (transformers' own
    `get_image_embeddings` runs without gradient): `best/`, a plain `SamModel` (LoRA merged), has an
    encoder that moved (with LoRA only the attention `qkv`), and click embeddings that learned exactly
    where the strategy trains the prompt encoder. TinyViT (MobileSAM's encoder) at 64 px."""
    from polyp_sam_hf.models.loading import load_model_and_processor
    from polyp_sam_hf.models.modeling_tinyvit_sam import TinyViTSamModel

    args = train_args(prepared_demo, tmp_path / "run", *ROUNDS, "--max_train_steps", "2", "--eval_steps", "2",
                      "--lora_rank", "2", "--embedding_cache", "false")
    args[args.index("--model_name_or_path") + 1] = "micro-tinyvit-sam-test"
    args[args.index("--strategy") + 1] = strategy
    train(*parse_config(args))
    trained = TinyViTSamModel.from_pretrained(tmp_path / "run" / "best").state_dict()
    base = load_model_and_processor("micro-tinyvit-sam-test", seed=42)[0].state_dict()  # the run's --seed
    moved = {k for k in base if k.startswith("vision_encoder.") and not torch.equal(base[k], trained[k])}
    assert moved
    if strategy != "full":
        assert all(".attn.qkv." in k for k in moved)
    clicks = ("prompt_encoder.point_embed.0.weight", "prompt_encoder.point_embed.1.weight")
    assert all(not torch.equal(base[k], trained[k]) for k in clicks) == (strategy != "lora")
