"""Units of training: loss, schedule, accumulation, strategies, configuration, batching."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from polyp_sam_hf.commands.train import main as train_main
from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.data.batches import PromptDataset, collate
from polyp_sam_hf.data.preprocessing import resized_shape
from polyp_sam_hf.evaluation.published import PAPER_RUNS
from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.training.config import TrainArguments, parse_config
from polyp_sam_hf.training.loop import build_scheduler, is_better
from polyp_sam_hf.training.losses import batch_loss, bce_loss, click_region_loss, dice_loss, get_loss
from polyp_sam_hf.training.strategies import count_parameters, freeze_unreached, get_strategy

# ----------------------------------------------------------------------------- loss

def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)[None]


def test_dice_loss_hand_computed():
    # logits +-20 give probabilities 1 and 0 to within 2e-9
    logits = _t([[20, 20], [-20, -20]])
    target = _t([[1, 0], [1, 0]])
    valid = torch.ones_like(target, dtype=torch.bool)
    # inter = 1, |p| = 2, |g| = 2: 1 - (2*1 + 1) / (4 + 1) = 0.4
    assert dice_loss(logits, target, valid).item() == pytest.approx(0.4, abs=1e-6)
    # soft probabilities: sigmoid(0) = 0.5 everywhere, target one pixel of four
    half = dice_loss(torch.zeros(1, 2, 2), _t([[1, 0], [0, 0]]), valid)
    assert half.item() == pytest.approx(1 - (2 * 0.5 + 1) / (2 + 1 + 1), abs=1e-6)


def test_dice_loss_empty_target_is_finite():
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    empty = torch.zeros(1, 4, 4)
    right = dice_loss(torch.full((1, 4, 4), -20.0), empty, valid)
    wrong = dice_loss(torch.full((1, 4, 4), 20.0), empty, valid)
    assert torch.isfinite(right).all() and right.item() < 1e-6
    assert wrong.item() == pytest.approx(1 - 1 / 17, abs=1e-6)
    assert torch.isfinite(bce_loss(torch.zeros(1, 4, 4), empty, torch.zeros_like(valid))).all()


def test_padding_does_not_count():
    target = _t([[1, 0, 0], [1, 0, 0]])
    logits = _t([[20, -20, 99], [20, -20, -99]])
    valid = _t([[1, 1, 0], [1, 1, 0]]).bool()
    padded_garbage = dice_loss(logits, target, valid)
    cropped = dice_loss(logits[..., :2], target[..., :2], valid[..., :2])
    assert padded_garbage.item() == pytest.approx(cropped.item(), abs=1e-6)
    assert padded_garbage.item() < 1e-6  # a loss that counted the border would be 1/3 worse


def test_the_click_region_loss_averages_over_each_clicked_region_and_skips_unclicked_items():
    """Item 0's clicked region is 2 of 16 pixels, one wrong at logit -2 on polyp, one right; item 1 got
    no click and counts neither way, however wrong it is."""
    targets = torch.zeros(2, 1, 4, 4)
    targets[0, 0, 0, :2] = 1
    logits = torch.full((2, 1, 4, 4), 20.0)  # everything polyp: item 1 all wrong
    logits[0, 0, 0, 0], logits[0, 0, 0, 1] = -2.0, 20.0
    regions = torch.zeros(2, 4, 4, dtype=torch.bool)
    regions[0, 0, :2] = True
    loss = click_region_loss(logits, {"targets": targets}, regions)
    expected = (torch.nn.functional.softplus(torch.tensor(2.0)) + torch.nn.functional.softplus(torch.tensor(-20.0))) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert click_region_loss(logits, {"targets": targets}, torch.zeros_like(regions)).item() == 0.0


def test_batch_loss_ignores_padded_prompts_and_padding():
    size = 8
    targets = torch.zeros(1, 2, size, size, dtype=torch.uint8)
    targets[0, 0, :4, :4] = 1
    logits = torch.full((1, 2, 2, 2), -20.0)
    logits[0, 0, 0, 0] = 20.0  # upsampled: top-left quarter (4 x 4 px) positive
    batch = {"targets": targets, "reshaped": torch.tensor([[6, 8]]), "box_valid": torch.tensor([[True, False]])}
    loss = batch_loss(logits, batch, get_loss("dice"))
    assert loss.item() < 0.05  # the padded second prompt (empty target, empty logits) is not averaged in
    logits[0, 1] = 20.0  # a wrong padded prompt would raise the loss if it counted
    assert batch_loss(logits, batch, get_loss("dice")).item() == pytest.approx(loss.item())


# ----------------------------------------------------------------------------- optimisation

def test_schedule_values_at_known_steps():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=4e-6)
    sched = build_scheduler(opt, TrainArguments(warmup_ratio=0.1, learning_rate=4e-6), total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0
    assert lrs[5] == pytest.approx(2e-6)  # half-way up the 10 warm-up steps
    assert lrs[10] == pytest.approx(4e-6)  # peak
    assert lrs[55] == pytest.approx(2e-6)  # cosine half-way down
    assert lrs[99] == pytest.approx(4e-6 * 0.5 * (1 + math.cos(math.pi * 89 / 90)))


@pytest.mark.parametrize("effective,per_device,procs,expected", [
    (None, 4, 1, 12), (48, 4, 1, 12), (48, 4, 2, 6), (48, 8, 2, 3), (8, 8, 1, 1)])
def test_accumulation_steps(effective, per_device, procs, expected):
    args = TrainArguments(effective_batch_size=effective, per_device_train_batch_size=per_device)
    assert args.accumulation_steps(procs) == expected  # None: the paper's 48


def test_accumulation_rejects_uneven_batches():
    with pytest.raises(ValueError, match="not a multiple"):
        TrainArguments(effective_batch_size=48, per_device_train_batch_size=5).accumulation_steps(2)


def test_gradient_accumulation_steps_as_in_transformers_examples():
    """--gradient_accumulation_steps sets the accumulation itself; with --effective_batch_size too, both must agree."""
    assert TrainArguments(gradient_accumulation_steps=3, per_device_train_batch_size=2).accumulation_steps(2) == 3
    assert TrainArguments(gradient_accumulation_steps=3, per_device_train_batch_size=2,
                          effective_batch_size=12).accumulation_steps(2) == 3
    with pytest.raises(ConfigError, match="disagrees with --gradient_accumulation_steps 3"):
        TrainArguments(gradient_accumulation_steps=3, per_device_train_batch_size=2,
                       effective_batch_size=48).accumulation_steps(2)


def test_nan_score_never_becomes_best():
    assert is_better(0.5, -math.inf)
    assert not is_better(float("nan"), -math.inf)
    assert not is_better(float("inf"), 0.5)
    assert not is_better(0.4, 0.5)


# ----------------------------------------------------------------------------- strategies

def _module_params(model, prefix):
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


@pytest.mark.parametrize("name", ["decoder", "prompt-decoder", "full", "lora", "lora-prompt-decoder"])
def test_strategy_trainable_counts(name):
    model, _ = load_model_and_processor("micro-sam-test")
    base_decoder = _module_params(model, "mask_decoder.")
    prompt = _module_params(model, "prompt_encoder.")
    encoder_and_prompt = _module_params(model, "vision_encoder.") + prompt
    shared = _module_params(model, "shared_image_embedding.")
    lora = sum(4 * (m.in_features + m.out_features) for n, m in model.named_modules() if n.endswith("attn.qkv"))
    model = get_strategy(name).apply(model, lora_rank=4)
    trainable, total = count_parameters(model)
    if name == "decoder":
        assert trainable == base_decoder
    elif name == "prompt-decoder":
        assert trainable == base_decoder + _module_params(model, "prompt_encoder.") > base_decoder
        assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("vision_encoder."))
    elif name == "full":
        assert trainable == base_decoder + encoder_and_prompt
    elif name == "lora":
        assert trainable == base_decoder + lora
        assert total == trainable + encoder_and_prompt + shared
    else:  # the prompt encoder trains too, the rest of the image encoder stays frozen
        assert trainable == base_decoder + lora + prompt > base_decoder + lora
        assert total == trainable + encoder_and_prompt - prompt + shared
        assert not any(p.requires_grad for n, p in model.named_parameters()
                       if "vision_encoder." in n and "lora_" not in n)


def test_freeze_unreached_freezes_what_boxes_never_touch():
    model, _ = load_model_and_processor("micro-sam-test")
    get_strategy("full").apply(model)
    pixels = torch.randn(1, 3, 32, 32)
    out = model(pixel_values=pixels, input_boxes=torch.tensor([[[2.0, 3.0, 20.0, 25.0]]]), multimask_output=False)
    frozen = freeze_unreached(model, out.pred_masks.sum())
    assert "prompt_encoder.point_embed.0.weight" in frozen  # positive-point embedding
    assert any(n.startswith("mask_decoder.iou_prediction_head") for n in frozen)
    assert "prompt_encoder.point_embed.2.weight" not in frozen  # box corners are used
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in frozen)


def test_missing_model_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="hf download"):
        load_model_and_processor("facebook/sam-vit-huge-not-cached")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="no config.json"):
        load_model_and_processor(str(tmp_path / "empty"))


# ----------------------------------------------------------------------------- configuration

def test_yaml_config_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_name_or_path: tiny-sam\nlearning_rate: 1.0e-3\nstrategy: lora\n")
    model_args, _, train_args = parse_config(["--config", str(path), "--learning_rate", "5e-4"])
    assert model_args.model_name_or_path == "tiny-sam" and model_args.strategy == "lora"
    assert train_args.learning_rate == 5e-4  # the flag wins over the file
    # the paper's 48 images per optimiser step where neither the file nor a flag says otherwise
    assert train_args.per_device_train_batch_size * train_args.accumulation_steps(1) == 48


def test_yaml_unknown_key_names_the_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("learnig_rate: 1.0\n")
    with pytest.raises(ValueError, match="typo.yaml.*learnig_rate"):
        parse_config(["--config", str(path)])


SHIPPED_CONFIGS = sorted((Path(__file__).parents[1] / "polyp_sam_hf" / "configs").glob("*.yaml"))


def test_every_named_config_is_shipped():
    assert {"demo", "mobile-sam-decoder-real", "mobile-sam-lora-real", "mobile-sam-interactive-real"} <= {
        path.stem for path in SHIPPED_CONFIGS}


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda path: path.stem)
def test_shipped_configs_parse_to_the_values_they_hold(path):
    import yaml

    from polyp_sam_hf.training.config import config_to_dict

    written = yaml.safe_load(path.read_text())
    parsed = config_to_dict(*parse_config(["--config", str(path)]))
    for key, value in written.items():  # YAML reads 1.5e-4 as text: compare in the field's own type
        assert parsed[key] == (type(parsed[key])(value) if parsed[key] is not None else value), key


@pytest.mark.parametrize("name", list(PAPER_RUNS))
def test_paper_configs_follow_the_paper(name):
    """Each paper run's config holds the paper's recipe, its backbone, strategy and split."""
    from conftest import REPO_ROOT

    model_args, data_args, train_args = parse_config(["--config", str(REPO_ROOT / "configs" / "paper" / f"{name}.yaml")])
    run = PAPER_RUNS[name]
    assert model_args.model_name_or_path == {"Polyp-SAM-B": "facebook/sam-vit-base", "Polyp-SAM-L": "facebook/sam-vit-large"}[run.method]
    assert model_args.strategy == run.strategy and data_args.split_preset == run.split
    assert data_args.prompt_mode == "box" and data_args.box_jitter == 0 and data_args.val_fraction == 0.2
    assert train_args.learning_rate == 4e-6 and train_args.effective_batch_size == 48
    assert train_args.loss == "dice" and train_args.lr_scheduler_type == "cosine"


# ----------------------------------------------------------------------------- batching

def test_per_component_prompts_pad_and_mark(prepared_demo):
    import datasets

    split = datasets.load_from_disk(str(prepared_demo))["test"]
    _, processor = load_model_and_processor("micro-sam-test")
    ds = PromptDataset(split, processor, prompt_mode="box-per-polyp")
    counts = [len(r) for r in split["boxes"]]
    order = np.argsort(counts)[::-1]
    many, one = int(order[0]), int(order[-1])
    assert counts[many] > 1, "the demo data should hold a frame with several polyps"
    batch = collate([ds[many], ds[one]])
    k = counts[many]
    assert batch["input_boxes"].shape == (2, k, 4) and batch["targets"].shape == (2, k, 32, 32)
    assert batch["box_valid"].tolist() == [[True] * k, [True] * counts[one] + [False] * (k - counts[one])]
    # each polyp's target is its own component: targets of one frame do not overlap
    t = batch["targets"][0].bool()
    assert (t.sum(0) <= 1).all()
    # box coordinates are scaled into the 32 x 32 input frame
    h, w = split[many]["height"], split[many]["width"]
    new_h, new_w = resized_shape(h, w, 32)
    expected = np.asarray(split[many]["boxes"][0]) * np.array([new_w / w, new_h / h] * 2)
    np.testing.assert_allclose(batch["input_boxes"][0, 0].numpy(), expected, rtol=1e-5)


def test_box_jitter_is_seeded_per_epoch(prepared_demo):
    import datasets

    split = datasets.load_from_disk(str(prepared_demo))["train"]
    _, processor = load_model_and_processor("micro-sam-test")
    ds = PromptDataset(split, processor, box_jitter=0.1, seed=3)
    first = ds[0]["boxes"]
    assert torch.equal(first, PromptDataset(split, processor, box_jitter=0.1, seed=3)[0]["boxes"])
    ds.set_epoch(1)
    assert not torch.equal(first, ds[0]["boxes"])
    exact = PromptDataset(split, processor)[0]["boxes"]
    assert not torch.equal(first, exact)


def test_train_command_reports_a_missing_model_without_a_traceback(prepared_demo, tmp_path, capsys):
    from conftest import train_args

    from polyp_sam_hf.commands.train import main

    argv = train_args(tmp_path / "no-data-read", tmp_path / "run") + ["--model_name_or_path", "facebook/sam-vit-not-cached"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    # said at once, before any data is read (the data folder here does not even exist), with no retries
    assert err.startswith("error: No folder facebook/sam-vit-not-cached exists here, and the Hub model")
    assert "HF_HUB_OFFLINE is set" in err and "hf download facebook/sam-vit-not-cached" in err and "Traceback" not in err


# --- every choice checked when the settings are read, before data or model load -------------------

@pytest.mark.parametrize("flag,value", [("--loss", "dcie"), ("--lr_scheduler_type", "cosin"), ("--strategy", "decodr"),
                                        ("--mixed_precision", "bf32")])
def test_typo_in_a_choice_fails_at_parse_time(flag, value, capsys):
    from polyp_sam_hf.training.config import parse_config

    with pytest.raises(SystemExit):
        parse_config([flag, value])
    assert "invalid choice" in capsys.readouterr().err


def test_a_prompt_mode_is_checked_by_its_registry_at_parse_time():
    """Prompt modes are asked of the registry (which knows the old names), not of argparse's choices."""
    with pytest.raises(ConfigError, match="Unknown training prompt mode 'per_component'. Valid training prompt modes: "
                                          "box, box-per-polyp, none"):
        parse_config(["--prompt_mode", "per_component"])
    with pytest.raises(ConfigError, match="Unknown training prompt mode 'auto'"):  # evaluation only
        parse_config(["--prompt_mode", "auto"])


@pytest.mark.parametrize("key,value,message", [("loss", "dcie", "loss 'dcie' is not one of"),
                                               ("strategy", "decodr", "strategy 'decodr' is not one of"),
                                               ("prompt_mode", "both", "Unknown training prompt mode 'both'")])
def test_typo_in_a_config_file_names_the_file(key, value, message, tmp_path):
    from polyp_sam_hf.training.config import parse_config

    path = tmp_path / "bad.yaml"
    path.write_text(f"{key}: {value}\n")
    with pytest.raises(ValueError, match=rf"{path}: {message}"):
        parse_config(["--config", str(path)])


def test_choices_are_the_registries_and_config_is_in_help(capsys):
    from polyp_sam_hf.training.config import parse_config
    from polyp_sam_hf.training.losses import LOSSES
    from polyp_sam_hf.training.strategies import STRATEGIES

    model, data, train = parse_config(["--strategy", "lora", "--loss", "dice+bce", "--prompt_mode", "box-per-polyp"])
    assert (model.strategy, train.loss, data.prompt_mode) == ("lora", "dice+bce", "box-per-polyp")
    with pytest.raises(SystemExit):
        parse_config(["--help"])
    help_text = capsys.readouterr().out
    assert "--config FILE.yaml" in help_text
    assert "{" + ",".join(STRATEGIES) + "}" in help_text and "{" + ",".join(LOSSES) + "}" in help_text


@pytest.mark.parametrize("flag,value", [
    ("--num_train_epochs", "0"), ("--max_train_samples", "0"), ("--per_device_train_batch_size", "0"),
    ("--effective_batch_size", "0"), ("--warmup_ratio", "-0.1"), ("--box_jitter", "-0.05"),
    ("--learning_rate", "-1e-5"), ("--save_total_limit", "0"), ("--max_train_steps", "0"), ("--val_fraction", "1.0"),
])
def test_out_of_range_settings_fail_at_parse_time(flag, value):
    """Each of these used to run on: 0 epochs still wrote best/, 0 training samples trained on all,
    batch 0 divided by zero, negative warm-up or jitter were accepted."""
    from polyp_sam_hf.training.config import parse_config

    with pytest.raises(ValueError, match=rf"{flag[2:]} .* must be"):
        parse_config([f"{flag}={value}"])  # one token: argparse reads "-1e-5" alone as a flag


def test_a_bug_keeps_its_traceback_a_library_error_is_one_line(prepared_demo, tmp_path, monkeypatch, capsys):
    """Only the library's own errors become one-line messages; a shape error inside torch (a bug)
    propagates with its traceback instead of being flattened into `error: ...`."""
    from conftest import train_args

    from polyp_sam_hf.training import loop as training

    def broken(logits, batch, loss_fn):
        raise ValueError("shape mismatch inside torch: (4, 1, 8, 8) vs (4, 8, 8)")

    monkeypatch.setattr(training, "batch_loss", broken)
    with pytest.raises(ValueError, match="shape mismatch inside torch"):
        train_main(train_args(prepared_demo, tmp_path / "run", "--max_train_steps", "1"))
    monkeypatch.undo()
    assert train_main(train_args(tmp_path / "no-such-data", tmp_path / "run2", "--max_train_steps", "1")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-such-data" in err and "Traceback" not in err


def test_validation_axis_spans_the_data_not_zero_to_one():
    """A climb from 0.927 to 0.940 was a flat line on a 0-1 axis."""
    import matplotlib.pyplot as plt

    from polyp_sam_hf.evaluation.figures import training_figure

    dice = [0.927, 0.933, 0.938, 0.940, 0.939]
    history = [{"step": 75 * (i + 1), "val_dice": d} for i, d in enumerate(dice)]
    history += [{"step": 10 * (i + 1), "train_loss": 0.3 / (i + 1)} for i in range(45)]
    fig = training_figure(history)
    low, high = fig.axes[1].get_ylim()
    assert 0.92 < low < 0.927 and 0.940 < high < 0.95
    assert len(fig.axes[0].lines[0].get_xdata()) == 45  # every loss log, not one point per validation
    plt.close(fig)


def test_best_step_label_is_a_legend_that_covers_no_data():
    """The label once sat on the data points (an annotation 14 px under the best one); it is now a
    legend entry, whose box matplotlib places away from every plotted point."""
    import matplotlib.pyplot as plt

    from polyp_sam_hf.evaluation.figures import training_figure

    history = [{"step": s, "train_loss": 1 / s, "val_dice": d} for s, d in zip(range(1, 9), (.2, .5, .7, .8, .85, .83, .86, .84))]
    fig = training_figure(history)
    dice_axes = fig.axes[1]
    assert not dice_axes.texts  # no free-floating annotation
    legend = dice_axes.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["best 0.860 at step 7 (best/)"]
    fig.canvas.draw()
    box = legend.get_window_extent()
    points = dice_axes.transData.transform([(h["step"], h["val_dice"]) for h in history])
    assert not any(box.contains(x, y) for x, y in points)
    plt.close(fig)


def test_misspelled_flags_and_keys_get_a_suggestion(tmp_path, capsys):
    from polyp_sam_hf.commands.cli import main as cli_main

    with pytest.raises(ConfigError, match=r"--learnig_rate \(did you mean --learning_rate\?\)"):
        parse_config(["--learnig_rate", "1e-5"])
    (tmp_path / "c.yaml").write_text("learnig_rate: 1.0e-5\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown keys \['learnig_rate'\] \(did you mean learning_rate\?\)"):
        parse_config(["--config", str(tmp_path / "c.yaml")])
    assert cli_main(["evaluate", "--model_name_or_path", "m", "--data", "d", "--output_dir", "o", "--protocl", "paper"]) == 1
    assert "(did you mean --protocol?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["evalute"])
    assert "(did you mean evaluate?)" in capsys.readouterr().err


def test_help_says_what_each_flag_does_and_its_default(capsys):
    from polyp_sam_hf.commands.cli import main as cli_main

    with pytest.raises(SystemExit):
        parse_config(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--no_embedding_cache Turn off --embedding_cache (on by default)" in text
    for command, flag in (("prepare", "--val_fraction VAL_FRACTION per training source (default: 0.2)"),
                          ("evaluate", ("--per_device_eval_batch_size PER_DEVICE_EVAL_BATCH_SIZE frames per encoder "
                                        "call (default: 4)"))):
        with pytest.raises(SystemExit):
            cli_main([command, "--help"])
        assert flag in " ".join(capsys.readouterr().out.split())


def _commands():
    from polyp_sam_hf.commands.cli import COMMANDS

    return list(COMMANDS)


@pytest.mark.parametrize("command", _commands())
def test_every_command_spells_its_flags_one_way(command, capsys):
    """snake_case only, as transformers' example scripts: no kebab-case twin in any command's help."""
    import re

    from polyp_sam_hf.commands.cli import main as cli_main

    with pytest.raises(SystemExit):
        cli_main([command, "--help"]) if command != "train" else parse_config(["--help"])
    flags = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", capsys.readouterr().out))
    assert flags and not [f for f in flags if "-" in f[2:]], flags


def test_the_command_list_prints(capsys):
    from polyp_sam_hf.commands.cli import COMMANDS
    from polyp_sam_hf.commands.cli import main as cli_main

    assert cli_main(["--help"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in COMMANDS)


@pytest.mark.parametrize("command, old, new", [
    ("train", "--model", "--model_name_or_path"), ("train", "--per_device_batch_size", "--per_device_train_batch_size"),
    ("train", "--num_epochs", "--num_train_epochs"), ("train", "--max_steps", "--max_train_steps"),
    ("train", "--lr_scheduler", "--lr_scheduler_type"), ("train", "--save_every_steps", "--checkpointing_steps"),
    ("train", "--output-dir", "--output_dir"), ("evaluate", "--model", "--model_name_or_path"),
    ("evaluate", "--output", "--output_dir"), ("evaluate", "--prompt-mode", "--prompt_mode"),
    ("prepare", "--data-root", "--data_root"), ("prepare", "--seed", "--split_seed"),
    ("predict", "--boxes", "--boxes_file"), ("compare", "--output", "--output_file"),
])
def test_an_old_flag_is_answered_with_its_new_name(command, old, new, capsys):
    from polyp_sam_hf.commands.cli import main as cli_main

    if command == "train":
        with pytest.raises(ConfigError, match=f"Unknown flag\\(s\\) {old} \\(did you mean {new}\\?\\)"):
            parse_config([old, "x"])
        return
    assert cli_main([command, old, "x"]) != 0
    assert f"(did you mean {new}?)" in capsys.readouterr().err


def test_an_old_yaml_key_and_prompt_mode_name_are_answered_with_the_new(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("model: tiny-sam\nnum_epochs: 3\n")
    with pytest.raises(ConfigError, match=r"unknown keys \['model', 'num_epochs'\] \(did you mean model_name_or_path, "
                                          r"num_train_epochs\?\)"):
        parse_config(["--config", str(path)])
    with pytest.raises(ConfigError, match="Prompt mode 'single' is now called 'box'"):
        parse_config(["--prompt_mode", "single"])


def test_records_of_earlier_versions_are_read_with_todays_names(tmp_path):
    """A best/ folder and a metrics.json written before the renames still identify the model and its modes."""
    from polyp_sam_hf.evaluation.record import EvaluationRecord
    from polyp_sam_hf.models.provenance import TRAINING_SETTINGS, read_train_config

    (tmp_path / TRAINING_SETTINGS).write_text(json.dumps({"model": "facebook/sam-vit-base", "num_epochs": 3,
                                                          "prompt_mode": "per-component"}))
    assert read_train_config(tmp_path) == {"model_name_or_path": "facebook/sam-vit-base", "num_train_epochs": 3,
                                           "prompt_mode": "box-per-polyp"}
    scores = {"n": 1, "dice": 0.5, "miou": 0.4}
    old = {"settings": {"model": "m", "prompt_modes": ["single"], "output": "o"}, "run": {"label": "m"},
           "primary": {"prompt_mode": "single", "box_jitter": 0.0},
           "results": {"model": {"single": {"0.0": {"kvasir": scores, "all": scores}}}}}
    record = EvaluationRecord.from_json(old)
    assert record.model == "m" and record.primary_mode == "box" and record.model_modes == ["box"]
    assert record.settings["prompt_mode"] == ["box"] and record.settings["output_dir"] == "o"
    assert record.all.dice == 0.5


def test_random_builtin_at_the_papers_learning_rate_is_warned(prepared_demo, tmp_path, caplog):
    from conftest import train_args

    from polyp_sam_hf.training.loop import train

    with caplog.at_level("WARNING"):
        train(*parse_config(train_args(prepared_demo, tmp_path / "run", "--max_train_steps", "1", "--learning_rate", "4e-6")))
    assert any("starts from random weights: at learning rate 4e-06" in r.getMessage() for r in caplog.records)


def test_a_path_the_system_refuses_is_one_line(tmp_path, capsys):
    from polyp_sam_hf.commands.cli import main as cli_main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli_main(["demo-data", "--output_dir", str(blocker / "data")]) == 1  # a file where a folder must go
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(blocker) in err and "Traceback" not in err


def test_weight_average_update_and_swap():
    from polyp_sam_hf.training.averaging import WeightAverage, decay_at

    assert decay_at(1, 0.99) == pytest.approx(2 / 11) and decay_at(10_000, 0.99) == 0.99
    p = torch.nn.Parameter(torch.zeros(3))
    average = WeightAverage([p], decay=0.99)
    with torch.no_grad():
        p.fill_(1.0)
    average.update(1)  # 2/11 of the start (0), 9/11 of the weights (1)
    torch.testing.assert_close(average.average[0], torch.full((3,), 9 / 11))
    with pytest.raises(RuntimeError), average.swapped_in():
        torch.testing.assert_close(p.detach(), torch.full((3,), 9 / 11))
        raise RuntimeError("validation failed")
    assert torch.equal(p.detach(), torch.ones(3))  # the model's own weights are back, even after an error
