"""Whole training runs on the micro model: equivalences, resume, safety, and what is saved."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
from conftest import train_args
from safetensors.torch import load_file
from transformers import SamModel, SamProcessor

from polyp_sam_hf.commands.train import main as train_main
from polyp_sam_hf.core.errors import CheckpointError, NonFiniteLossError
from polyp_sam_hf.training import loop as training
from polyp_sam_hf.training.checkpointing import resolve_checkpoint, save_training_state
from polyp_sam_hf.training.config import parse_config
from polyp_sam_hf.training.loop import train


def run(data, out, *extra):
    return train(*parse_config(train_args(data, out, *extra)))


def weights(path):
    return load_file(str(path / "model.safetensors"))


def assert_same_weights(a, b, atol=0.0):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0 if atol == 0 else 1e-5, msg=key)


def test_accumulation_equals_the_large_batch(prepared_demo, tmp_path):
    run(prepared_demo, tmp_path / "acc", "--per_device_train_batch_size", "2", "--effective_batch_size", "4",
        "--max_train_steps", "2", "--save_total_limit", "5")
    run(prepared_demo, tmp_path / "big", "--per_device_train_batch_size", "4", "--effective_batch_size", "4",
        "--max_train_steps", "2", "--save_total_limit", "5")
    acc = weights(tmp_path / "acc" / "checkpoints" / "step-0000002")
    big = weights(tmp_path / "big" / "checkpoints" / "step-0000002")
    assert_same_weights(acc, big, atol=1e-5)
    from polyp_sam_hf.models.loading import load_model_and_processor

    start = load_model_and_processor("micro-sam-test", seed=42)[0].state_dict()
    moved = [k for k in big if not torch.allclose(start[k], big[k], atol=1e-4)]
    assert len(moved) > 10  # the two steps changed the weights: the equality above is not trivial


def test_resume_equals_straight_run(prepared_demo, tmp_path):
    # 12 training frames, batch 4: 3 steps an epoch; stopping at 4 resumes in the middle of epoch 2
    common = ("--max_train_steps", "6", "--box_jitter", "0.1", "--save_total_limit", "10")
    run(prepared_demo, tmp_path / "straight", *common)
    first = run(prepared_demo, tmp_path / "resumed", *common, "--stop_after_steps", "4")
    assert first["steps"] == 4
    state = json.loads((tmp_path / "resumed" / "checkpoints" / "step-0000004" / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["epoch"] == 1 and state["batches_in_epoch"] == 1
    second = run(prepared_demo, tmp_path / "resumed", *common, "--resume_from_checkpoint", "latest")
    assert second["steps"] == 6
    straight = weights(tmp_path / "straight" / "checkpoints" / "step-0000006")
    resumed = weights(tmp_path / "resumed" / "checkpoints" / "step-0000006")
    assert_same_weights(straight, resumed, atol=1e-6)
    # and the resumed run did move away from the stop point
    stopped = weights(tmp_path / "resumed" / "checkpoints" / "step-0000004")
    assert any(not torch.equal(stopped[k], resumed[k]) for k in resumed)


def test_best_weights_are_the_best_validation_step(prepared_demo, tmp_path):
    out = tmp_path / "run"
    result = run(prepared_demo, out, "--max_train_steps", "5", "--eval_steps", "1", "--save_total_limit", "10",
                 "--learning_rate", "3e-3")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5]
    best = max(history, key=lambda h: h["val_dice"])
    assert result["best_step"] == best["step"] and result["best_dice"] == pytest.approx(best["val_dice"])
    saved = SamModel.from_pretrained(out / "best").state_dict()
    at_best = weights(out / "checkpoints" / f"step-{best['step']:07d}")
    for key, value in at_best.items():
        torch.testing.assert_close(saved[key], value, msg=key)
    assert (out / "training_curves.png").stat().st_size > 1000


def test_best_folder_loads_with_vanilla_transformers_same_logits(prepared_demo, tmp_path):
    """best/ of a LoRA run, loaded by plain `SamModel` (adapters merged), scores on the validation
    split exactly what the run recorded for its best step with the adapters unmerged: a wrong merge
    or a wrong export would change the logits and so the Dice."""
    import datasets
    from accelerate import Accelerator

    from polyp_sam_hf.data.batches import PromptDataset, collate
    from polyp_sam_hf.evaluation.scoring import validation_scores

    out = tmp_path / "run"
    result = run(prepared_demo, out, "--strategy", "lora", "--lora_rank", "2", "--max_train_steps", "2",
                 "--learning_rate", "5e-2")
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in (out / "best").iterdir()}
    model = SamModel.from_pretrained(out / "best").eval()
    processor = SamProcessor.from_pretrained(out / "best")
    assert processor.image_processor.size["longest_edge"] == 32
    assert not any("lora" in k for k in model.state_dict())
    validation = datasets.load_from_disk(str(prepared_demo))["validation"]
    loader = torch.utils.data.DataLoader(PromptDataset(validation, processor), batch_size=4, collate_fn=collate)
    scored = validation_scores(model, loader, Accelerator(cpu=True))
    assert scored["dice"] == pytest.approx(result["best_dice"], abs=1e-6)
    untrained = SamModel.from_pretrained(out / "best").eval()
    with torch.no_grad():  # the check can fail: flipped mask logits give another Dice
        head = untrained.mask_decoder.output_hypernetworks_mlps[0].proj_out
        head.weight.mul_(-1)
        head.bias.mul_(-1)
    assert validation_scores(untrained, loader, Accelerator(cpu=True))["dice"] != pytest.approx(result["best_dice"], abs=1e-6)


def test_lora_export_gives_the_same_logits(tmp_path):
    from polyp_sam_hf.models.loading import load_model_and_processor
    from polyp_sam_hf.training.checkpointing import save_pretrained_atomic
    from polyp_sam_hf.training.strategies import get_strategy

    model, processor = load_model_and_processor("micro-sam-test")
    model = get_strategy("lora").apply(model, lora_rank=2)
    with torch.no_grad():  # LoRA's B starts at zero; give it weight so the merge matters
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    save_pretrained_atomic(model, processor, tmp_path / "export")
    vanilla = SamModel.from_pretrained(tmp_path / "export").eval()
    pixels = torch.randn(2, 3, 32, 32)
    boxes = torch.tensor([[[2.0, 3.0, 20.0, 25.0]], [[5.0, 5.0, 30.0, 18.0]]])
    with torch.no_grad():
        expected = model.eval()(pixel_values=pixels, input_boxes=boxes, multimask_output=False).pred_masks
        got = vanilla(pixel_values=pixels, input_boxes=boxes, multimask_output=False).pred_masks
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    with torch.no_grad():  # PEFT's safe merge: adapters that would put NaN in the weights are refused
        next(p for name, p in model.named_parameters() if "lora_B" in name)[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="Cannot merge the LoRA adapters"):
        save_pretrained_atomic(model, processor, tmp_path / "nan-export")
    assert not (tmp_path / "nan-export").exists()


def test_nan_loss_stops_with_the_step(prepared_demo, tmp_path, monkeypatch):
    real = training.batch_loss
    calls = {"n": 0}

    def poisoned(logits, batch, loss_fn):
        calls["n"] += 1
        loss = real(logits, batch, loss_fn)
        return loss * float("nan") if calls["n"] >= 4 else loss  # call 1 is the parameter probe

    monkeypatch.setattr(training, "batch_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        run(prepared_demo, tmp_path / "run", "--max_train_steps", "5")


def test_ctrl_c_saves_interrupted_and_exits_nonzero(prepared_demo, tmp_path, monkeypatch):
    real = training.batch_loss
    calls = {"n": 0}

    def interrupt(logits, batch, loss_fn):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(logits, batch, loss_fn)

    monkeypatch.setattr(training, "batch_loss", interrupt)
    out = tmp_path / "run"
    code = train_main(train_args(prepared_demo, out, "--max_train_steps", "5"))
    assert code == 130
    state = json.loads((out / "checkpoints" / "interrupted" / "trainer_state.json").read_text())
    assert state["step"] == 2
    assert resolve_checkpoint(out, "latest").name == "interrupted"
    monkeypatch.setattr(training, "batch_loss", real)
    assert run(prepared_demo, out, "--max_train_steps", "5", "--resume_from_checkpoint", "latest")["steps"] == 5


def test_interrupted_save_leaves_the_previous_checkpoint(prepared_demo, tmp_path, monkeypatch):
    out = tmp_path / "run"
    run(prepared_demo, out, "--max_train_steps", "2", "--eval_steps", "2")
    good = out / "checkpoints" / "step-0000002"
    before = weights(good)
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 2)
    accelerator.prepare(model)

    def dies_half_way(self, output_dir, **kwargs):
        (tmp_path / "run" / "checkpoints" / ".step-0000002.tmp").mkdir(parents=True, exist_ok=True)
        (tmp_path / "run" / "checkpoints" / ".step-0000002.tmp" / "model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Accelerator, "save_state", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        save_training_state(accelerator, out, "step-0000002", {"step": 2})
    assert_same_weights(before, weights(good))
    assert resolve_checkpoint(out, "latest") == good
    monkeypatch.undo()
    save_training_state(accelerator, out, "step-0000003", {"step": 3})
    assert resolve_checkpoint(out, "latest").name == "step-0000003"


def test_tensorboard_and_jsonl_logs(prepared_demo, tmp_path):
    out = tmp_path / "run"
    run(prepared_demo, out, "--max_train_steps", "2", "--eval_steps", "1", "--logging_steps", "1",
        "--report_to", "tensorboard")
    events = list(out.rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert {"train_loss", "val_dice"} <= set(acc.Tags()["scalars"])
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    validations = [x for x in lines if "val_dice" in x]
    assert [x["step"] for x in validations] == [1, 2] and all(0 <= x["val_dice"] <= 1 for x in validations)
    assert [x["step"] for x in lines if "train_loss" in x] == [1, 2]


def test_the_loss_is_logged_as_its_mean_every_logging_steps(prepared_demo, tmp_path, monkeypatch):
    """One step's loss is the luck of its batch: the log (metrics.jsonl, trackers, the curve) holds the
    mean of the `--logging_steps` steps since the last log, and survives a stop and resume."""
    real = training._end_of_step
    losses = []

    def spy(loss, step, accelerator):
        losses.append(real(loss, step, accelerator))
        return losses[-1]

    monkeypatch.setattr(training, "_end_of_step", spy)
    out = tmp_path / "run"
    run(prepared_demo, out, "--max_train_steps", "5", "--logging_steps", "2", "--stop_after_steps", "3")
    run(prepared_demo, out, "--max_train_steps", "5", "--logging_steps", "2", "--resume_from_checkpoint", "latest")
    logged = [x for x in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "train_loss" in x]
    assert [x["step"] for x in logged] == [2, 4]
    assert logged[0]["train_loss"] == pytest.approx((losses[0] + losses[1]) / 2)
    assert logged[1]["train_loss"] == pytest.approx((losses[2] + losses[3]) / 2)  # step 3 before the stop, 4 after


def test_gradient_checkpointing_gives_the_same_step(prepared_demo, tmp_path, monkeypatch):
    """Same weights after a step, and the flag really recomputes: the first encoder layer's
    attention runs again during the backward pass (more calls than without it; transformers keeps
    hooks on the layer itself outside the recompute, so the hook sits inside it)."""
    real_load = training.load_model_and_processor
    calls = {}

    def counting(name, seed=0, **kwargs):
        model, processor = real_load(name, seed, **kwargs)
        key = len(calls)
        calls[key] = 0

        def hook(*_):
            calls[key] += 1

        model.vision_encoder.layers[0].attn.register_forward_hook(hook)
        return model, processor

    monkeypatch.setattr(training, "load_model_and_processor", counting)
    run(prepared_demo, tmp_path / "plain", "--max_train_steps", "1", "--evaluate_test", "false")
    run(prepared_demo, tmp_path / "ckpt", "--max_train_steps", "1", "--gradient_checkpointing", "true", "--evaluate_test", "false")
    assert_same_weights(weights(tmp_path / "plain" / "checkpoints" / "step-0000001"),
                        weights(tmp_path / "ckpt" / "checkpoints" / "step-0000001"), atol=1e-6)
    plain, checkpointed = calls[0], calls[1]
    assert checkpointed > plain  # the recomputation in backward


def test_second_run_into_the_same_folder_is_refused_or_replaces(prepared_demo, tmp_path):
    """Two runs in one OUTPUT_DIR used to mix best/, checkpoints and metrics.jsonl silently."""
    out = tmp_path / "run"
    run(prepared_demo, out, "--max_train_steps", "2", "--eval_steps", "1")
    best = (out / "best" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=rf"{out} holds an earlier run .*--resume_from_checkpoint latest.*--overwrite_output_dir"):
        run(prepared_demo, out, "--max_train_steps", "1", "--learning_rate", "5e-2")
    assert (out / "best" / "model.safetensors").read_bytes() == best  # nothing touched
    run(prepared_demo, out, "--max_train_steps", "1", "--learning_rate", "5e-2", "--overwrite_output_dir", "true")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1]  # only the new run's validation, no interleaving
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("step-")) == ["step-0000001"]


def _fake_checkpoint(out, name, state):
    folder = out / "checkpoints" / name
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(state if isinstance(state, str) else json.dumps(state))
    return folder


def test_damaged_trainer_state_is_named_and_the_previous_checkpoint_offered(tmp_path):
    out = tmp_path / "run"
    good = _fake_checkpoint(out, "step-0000002", {"step": 2})
    bad = _fake_checkpoint(out, "step-0000004", '{"step": 4, "best_di')  # cut off mid-write
    with pytest.raises(ValueError) as err:
        resolve_checkpoint(out, "latest")
    assert str(bad / "trainer_state.json") in str(err.value) and f"--resume_from_checkpoint {good}" in str(err.value)
    with pytest.raises(ValueError, match="step-0000004/trainer_state.json is damaged"):
        resolve_checkpoint(out, str(bad))
    # an older damaged checkpoint does not hide the newest good one
    _fake_checkpoint(out, "step-0000006", {"step": 6})
    assert resolve_checkpoint(out, "latest").name == "step-0000006"
    # nor may a damaged `interrupted/`, whose step cannot be told
    _fake_checkpoint(out, "interrupted", "[]")
    with pytest.raises(ValueError, match="interrupted/trainer_state.json is damaged.*step-0000006"):
        resolve_checkpoint(out, "latest")


# 12 training frames at batch 2 and accumulation 3: two optimiser steps an epoch, three micro-batches each
ACCUMULATING = ("--per_device_train_batch_size", "2", "--effective_batch_size", "6", "--max_train_steps", "4",
                "--box_jitter", "0.1", "--save_total_limit", "10")


def _interrupt_at(monkeypatch, call, how):
    """Ctrl-C during the `call`-th loss computation (call 1 is the parameter probe)."""
    import os
    import signal

    real = training.batch_loss
    calls = {"n": 0}

    def hooked(logits, batch, loss_fn):
        calls["n"] += 1
        if calls["n"] == call:
            if how == "raise":  # the second Ctrl-C: stop at once
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)  # a real first Ctrl-C, through the handler
        return real(logits, batch, loss_fn)

    monkeypatch.setattr(training, "batch_loss", hooked)
    return real


@pytest.mark.parametrize("how, saved_step, saved_batches", [
    ("signal", 2, 6),  # the first Ctrl-C finishes step 2 (micro-batches 5 and 6), then stops
    ("raise", 1, 3),  # a second Ctrl-C in step 2's second micro-batch: step 2 is discarded
])
def test_ctrl_c_during_accumulation_resumes_exactly(how, saved_step, saved_batches, prepared_demo, tmp_path,
                                                     monkeypatch):
    straight = tmp_path / "straight"
    run(prepared_demo, straight, *ACCUMULATING)
    out = tmp_path / "run"
    real = _interrupt_at(monkeypatch, 1 + 5, how)  # the fifth micro-batch: step 2's second
    assert train_main(train_args(prepared_demo, out, *ACCUMULATING)) == 130
    state = json.loads((out / "checkpoints" / "interrupted" / "trainer_state.json").read_text())
    assert (state["step"], state["epoch"], state["batches_in_epoch"]) == (saved_step, 0, saved_batches)
    monkeypatch.setattr(training, "batch_loss", real)
    assert run(prepared_demo, out, *ACCUMULATING, "--resume_from_checkpoint", "latest")["steps"] == 4
    assert_same_weights(weights(straight / "checkpoints" / "step-0000004"),
                        weights(out / "checkpoints" / "step-0000004"), atol=1e-6)
    assert not list((out / "checkpoints").glob(".*"))  # no temporary folder left


def test_best_is_swapped_in_one_step_and_a_cut_replacement_is_restored(tmp_path, monkeypatch):
    from polyp_sam_hf.core import files as checkpointing  # the replacement checkpoints use

    def folder(name, text):
        path = tmp_path / name
        path.mkdir()
        (path / "model.safetensors").write_text(text)
        return path

    best = folder("best", "old")
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(checkpointing.os, "replace", lambda a, b: renames.append((a, b)) or real_replace(a, b))
    checkpointing.replace_atomically(folder(".best.tmp", "new"), best)
    assert (best / "model.safetensors").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    if sys.platform == "linux":
        assert renames == []  # one atomic exchange: best/ never missing, not even for a moment
    # where only two renames are possible and the process dies between them, the next save restores best/
    monkeypatch.setattr(checkpointing, "_exchange", lambda a, b: False)
    calls = {"n": 0}

    def dies_after_first(a, b):
        calls["n"] += 1
        real_replace(a, b)
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpointing.os, "replace", dies_after_first)
    with pytest.raises(KeyboardInterrupt):
        checkpointing.replace_atomically(folder(".best.tmp", "newer"), best)
    assert not best.exists() and (tmp_path / ".best.old").is_dir()
    monkeypatch.setattr(checkpointing.os, "replace", real_replace)
    checkpointing.restore_replaced(best)  # what resuming and the next save of best/ call first
    assert (best / "model.safetensors").read_text() == "new"


def test_checkpoints_rotate_past_save_total_limit_and_the_newest_is_kept(prepared_demo, tmp_path):
    out = tmp_path / "run"
    run(prepared_demo, out, "--max_train_steps", "5", "--checkpointing_steps", "1", "--eval_steps", "0",
        "--save_total_limit", "2")
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept == ["step-0000004", "step-0000005"]
    assert (out / "best" / "model.safetensors").is_file()  # best/ is not a step checkpoint: never rotated


def test_keep_last_zero_never_deletes_the_checkpoint_just_written(tmp_path):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    accelerator.prepare(torch.nn.Linear(2, 2))
    save_training_state(accelerator, tmp_path, "step-0000001", {"step": 1}, keep_last=0)
    assert (tmp_path / "checkpoints" / "step-0000001" / "trainer_state.json").is_file()


def _planted_pickle(path, marker):
    import pickle

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    path.write_bytes(pickle.dumps(Payload()))


def test_resume_never_unpickles_code_from_a_checkpoint(prepared_demo, tmp_path, caplog):
    """A planted pickle where Accelerate keeps custom objects and RNG states is never run: the
    scheduler travels as JSON, the RNG states are read as data only, and the user is warned."""
    out = tmp_path / "run"
    run(prepared_demo, out, "--max_train_steps", "2", "--checkpointing_steps", "1", "--eval_steps", "0",
        "--stop_after_steps", "1")
    checkpoint = out / "checkpoints" / "step-0000001"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["scheduler"]["last_epoch"] == 1  # the schedule's state is JSON
    assert not list(checkpoint.glob("custom_checkpoint_*"))
    marker = tmp_path / "pwned"
    _planted_pickle(checkpoint / "custom_checkpoint_0.pkl", marker)
    with pytest.raises(ValueError, match="custom_checkpoint_0.pkl: a pickled object .* never read"):
        run(prepared_demo, out, "--max_train_steps", "2", "--resume_from_checkpoint", "latest")
    assert not marker.exists()
    (checkpoint / "custom_checkpoint_0.pkl").unlink()
    _planted_pickle(checkpoint / "random_states_0.pkl", marker)
    with caplog.at_level("WARNING"):
        assert run(prepared_demo, out, "--max_train_steps", "2", "--resume_from_checkpoint", "latest")["steps"] == 2
    assert not marker.exists()
    assert any("Cannot read the random states" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_resume_from_an_older_checkpoint_replays_the_schedule(prepared_demo, tmp_path):
    common = ("--max_train_steps", "4", "--save_total_limit", "10", "--eval_steps", "0", "--checkpointing_steps", "1")
    run(prepared_demo, tmp_path / "straight", *common)
    out = tmp_path / "run"
    run(prepared_demo, out, *common, "--stop_after_steps", "2")
    path = out / "checkpoints" / "step-0000002" / "trainer_state.json"
    state = json.loads(path.read_text())
    del state["scheduler"]  # as versions before the JSON scheduler state wrote it
    path.write_text(json.dumps(state))
    run(prepared_demo, out, *common, "--resume_from_checkpoint", "latest")
    assert_same_weights(weights(tmp_path / "straight" / "checkpoints" / "step-0000004"),
                        weights(out / "checkpoints" / "step-0000004"), atol=1e-6)


def test_ctrl_c_while_the_interrupt_checkpoint_is_saved_waits_for_it(prepared_demo, tmp_path, monkeypatch, caplog):
    import signal

    from accelerate import Accelerator

    real_save = Accelerator.save_state

    def impatient(self, output_dir, **kwargs):
        if "interrupted" in str(output_dir):
            os.kill(os.getpid(), signal.SIGINT)  # pressed again while the checkpoint is written
        return real_save(self, output_dir, **kwargs)

    _interrupt_at(monkeypatch, 1 + 5, "raise")
    monkeypatch.setattr(Accelerator, "save_state", impatient)
    out = tmp_path / "run"
    with caplog.at_level("WARNING"):
        assert train_main(train_args(prepared_demo, out, *ACCUMULATING)) == 130
    assert (out / "checkpoints" / "interrupted" / "trainer_state.json").is_file()
    assert not list((out / "checkpoints").glob(".*"))  # no half-written .interrupted.tmp
    assert any("still saving checkpoints/interrupted" in r.getMessage() for r in caplog.records)
    assert any("Saved checkpoints/interrupted at step 1" in r.getMessage() for r in caplog.records)


def test_checkpoints_do_not_warn_about_the_tied_embedding(prepared_demo, tmp_path, caplog):
    """Accelerate's "Removed shared tensor" line for SAM's tied positional embedding is explained
    in the docs and dropped; the tie survives the round trip (resume tests show equal weights)."""
    with caplog.at_level("WARNING"):
        run(prepared_demo, tmp_path / "run", "--max_train_steps", "2", "--checkpointing_steps", "1", "--eval_steps", "0")
    assert not [r for r in caplog.records if "Removed shared tensor" in r.getMessage()]
    state = load_file(str(tmp_path / "run" / "checkpoints" / "step-0000002" / "model.safetensors"))
    assert "shared_image_embedding.positional_embedding" in state  # stored once, under the model's name


# ----------------------------------------------------------------------------- paths with no test before

@pytest.mark.parametrize("variant", ["device normalisation", "two loader workers"])
def test_input_paths_train_the_same_weights(variant, prepared_demo, tmp_path, monkeypatch):
    """The GPU input path (uint8 batches normalised on the device, forced here on the CPU) and
    loader worker processes give the weights the default CPU path gives."""
    common = ("--max_train_steps", "2", "--pixel_cache", "true", "--box_jitter", "0.1", "--save_total_limit", "5")
    run(prepared_demo, tmp_path / "default", *common)
    calls = {"device": 0}
    real = training.batch_logits

    def spy(model, batch):
        calls["device"] += "pixel_uint8" in batch  # frames arrived as uint8: normalised on the device
        return real(model, batch)

    monkeypatch.setattr(training, "batch_logits", spy)
    if variant == "device normalisation":
        monkeypatch.setenv(training.NORMALIZE_ON_DEVICE, "1")
        run(prepared_demo, tmp_path / "other", *common)
        assert calls["device"] > 0
    else:
        run(prepared_demo, tmp_path / "other", *common, "--dataloader_num_workers", "2")
        assert calls["device"] == 0
    assert_same_weights(weights(tmp_path / "default" / "checkpoints" / "step-0000002"),
                        weights(tmp_path / "other" / "checkpoints" / "step-0000002"), atol=1e-6)


def test_max_grad_norm_clips_every_step(prepared_demo, tmp_path, monkeypatch):
    from accelerate import Accelerator

    norms = []
    real = Accelerator.clip_grad_norm_

    def recording(self, parameters, max_norm, norm_type=2):
        parameters = list(parameters)
        before = real(self, parameters, max_norm, norm_type)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None]))
        norms.append((float(before), float(after), max_norm))
        return before

    monkeypatch.setattr(Accelerator, "clip_grad_norm_", recording)
    run(prepared_demo, tmp_path / "run", "--max_train_steps", "3", "--max_grad_norm", "1e-6")
    assert len(norms) == 3  # once per optimiser step
    for before, after, max_norm in norms:
        assert max_norm == 1e-6 and before > max_norm and after <= max_norm * (1 + 1e-3)
    norms.clear()
    run(prepared_demo, tmp_path / "none", "--max_train_steps", "3")
    assert norms == []  # no clipping unless asked


def test_ema_best_holds_the_average_of_the_steps(prepared_demo, tmp_path):
    from polyp_sam_hf.models.loading import load_model_and_processor
    from polyp_sam_hf.training.averaging import AVERAGE_FILE, decay_at

    out = tmp_path / "run"
    run(prepared_demo, out, "--max_train_steps", "3", "--eval_steps", "3", "--checkpointing_steps", "1",
        "--save_total_limit", "10", "--ema_decay", "0.5")
    start = load_model_and_processor("micro-sam-test", seed=42)[0].state_dict()
    steps = [weights(out / "checkpoints" / f"step-{n:07d}") for n in (1, 2, 3)]
    expected = {k: start[k].clone() for k in steps[0]}
    for n, step in enumerate(steps, start=1):  # the average, from the raw weights each step saved
        d = decay_at(n, 0.5)
        expected = {k: d * expected[k] + (1 - d) * step[k] for k in expected}
    best = SamModel.from_pretrained(out / "best").state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(best[key], value, atol=1e-6, rtol=1e-5, msg=key)
    # best/ is the average, not the last step's weights (which the checkpoint keeps for training on)
    assert any(not torch.allclose(best[k], steps[-1][k], atol=1e-4) for k in expected)
    assert (out / "checkpoints" / "step-0000003" / AVERAGE_FILE).is_file()


def test_ema_resume_equals_straight_run(prepared_demo, tmp_path):
    from polyp_sam_hf.core.errors import CheckpointError
    from polyp_sam_hf.training.averaging import AVERAGE_FILE

    common = ("--max_train_steps", "6", "--save_total_limit", "10", "--ema_decay", "0.9")
    run(prepared_demo, tmp_path / "straight", *common)
    run(prepared_demo, tmp_path / "resumed", *common, "--stop_after_steps", "4")
    run(prepared_demo, tmp_path / "resumed", *common, "--resume_from_checkpoint", "latest")
    straight = load_file(str(tmp_path / "straight" / "checkpoints" / "step-0000006" / AVERAGE_FILE))
    resumed = load_file(str(tmp_path / "resumed" / "checkpoints" / "step-0000006" / AVERAGE_FILE))
    assert_same_weights(straight, resumed, atol=1e-6)
    assert_same_weights(weights(tmp_path / "straight" / "best"), weights(tmp_path / "resumed" / "best"), atol=1e-6)
    # a checkpoint saved without an average cannot resume a run that validates one
    run(prepared_demo, tmp_path / "plain", "--max_train_steps", "4", "--stop_after_steps", "2")
    with pytest.raises(CheckpointError, match="without --ema_decay"):
        run(prepared_demo, tmp_path / "plain", "--max_train_steps", "4", "--ema_decay", "0.9",
            "--resume_from_checkpoint", "latest")
