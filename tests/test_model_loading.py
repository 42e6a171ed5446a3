"""Every way `--model_name_or_path` can be wrong gives one message that names it and says what to do."""

from __future__ import annotations

import shutil

import pytest
import torch

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.models.loading import ModelLoadError, load_model_and_processor


def _copy(micro_checkpoint, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(micro_checkpoint, folder)
    return folder


def _no_such_path(ckpt, tmp):
    return str(tmp / "nothere" / "x")


def _hub_id_offline(ckpt, tmp):
    return "polyp-sam-test-org/nothere"  # a Hub id by its form, and no such folder's parent here


def _run_folder(ckpt, tmp):
    return str(ckpt.parent)


def _no_config(ckpt, tmp):
    folder = _copy(ckpt, tmp)
    (folder / "config.json").unlink()
    return str(folder)


def _no_weights(ckpt, tmp):
    folder = _copy(ckpt, tmp)
    (folder / "model.safetensors").unlink()
    return str(folder)


def _no_processor(ckpt, tmp):
    folder = _copy(ckpt, tmp)
    for name in ("preprocessor_config.json", "processor_config.json"):
        (folder / name).unlink(missing_ok=True)
    return str(folder)


def _truncated_weights(ckpt, tmp):
    folder = _copy(ckpt, tmp)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    return str(folder)


def _garbage_weights(ckpt, tmp):
    folder = _copy(ckpt, tmp)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file at all" * 10)
    return str(folder)


def _garbage_config(ckpt, tmp):
    folder = _copy(ckpt, tmp)
    (folder / "config.json").write_text("{ this is not json")
    return str(folder)


def _a_file(ckpt, tmp):
    path = tmp / "weights.bin"
    path.write_bytes(b"x")
    return str(path)


CASES = [
    ("no such path", _no_such_path, "The folder .*nothere/x does not exist"),
    ("Hub id, offline, not cached", _hub_id_offline, "not in the local cache while HF_HUB_OFFLINE is set"),
    ("a training run", _run_folder, "is a training run, not a model: pass .*best"),
    ("no config.json", _no_config, "has no config.json"),
    ("no weights", _no_weights, "no weights"),
    ("no processor settings", _no_processor, "has no preprocessor_config.json"),
    ("truncated safetensors", _truncated_weights, "Cannot read the model in .*damaged or truncated"),
    ("garbage safetensors", _garbage_weights, "Cannot read the model in .*damaged or truncated"),
    ("garbage config.json", _garbage_config, "Cannot read the model in .*damaged or truncated"),
    ("a file", _a_file, "is a file"),
]


@pytest.mark.parametrize("case, make, message", CASES, ids=[c[0] for c in CASES])
def test_bad_model_is_one_clear_error(case, make, message, micro_checkpoint, tmp_path):
    name = make(micro_checkpoint, tmp_path)
    with pytest.raises(ModelLoadError, match=message) as err:
        load_model_and_processor(name)
    assert name in str(err.value) or case == "a training run"
    if case in ("no such path", "no processor settings"):
        assert "offline" not in str(err.value).lower() and "hf download" not in str(err.value)


def test_non_finite_weights_are_refused_when_loading(micro_checkpoint, tmp_path):
    model, processor = load_model_and_processor(str(micro_checkpoint))
    with torch.no_grad():
        model.mask_decoder.iou_token.weight[0, 0] = float("inf")
    model.save_pretrained(tmp_path / "inf")
    processor.save_pretrained(tmp_path / "inf")
    with pytest.raises(ValueError, match="iou_token.weight holds NaN or infinite values"):
        load_model_and_processor(str(tmp_path / "inf"))


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_commands_print_the_message_not_a_traceback(command, micro_checkpoint, prepared_demo, tmp_path, capsys):
    folder = _truncated_weights(micro_checkpoint, tmp_path)
    from PIL import Image

    Image.new("RGB", (16, 16)).save(tmp_path / "frame.png")
    args = {"predict": ["--image", str(tmp_path / "frame.png"), "--box", "1,1,5,5"],
            "evaluate": ["--data", str(prepared_demo)]}
    assert cli_main([command, "--model_name_or_path", folder, "--output_dir", str(tmp_path / "out"), *args[command]]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot read the model in") and "Traceback" not in err
