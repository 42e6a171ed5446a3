"""Common mistakes stop early with one line that names the problem and what to do."""

from __future__ import annotations

import pytest
from conftest import blob_mask, write_pair

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.core.errors import ConfigError, ModelLoadError
from polyp_sam_hf.models.loading import check_model_available
from polyp_sam_hf.training.config import parse_config


@pytest.mark.parametrize("argv, message", [
    (["--num_epoch", "3"], "did you mean --num_train_epochs"),  # an abbreviation is a typo, not a match
    (["--learning_rat", "1e-3"], "did you mean --learning_rate"),
    (["--strategy", "lora", "--lora_rank", "0"], "lora_rank 0 must be at least 1"),
])
def test_train_flags_are_checked_when_parsed(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(argv)


def test_cli_refuses_abbreviated_flags(capsys):
    assert cli_main(["prepare", "--data_root", "x", "--output_dir", "y", "--skip-bad"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown flag(s) --skip-bad (did you mean --skip_bad_files?)")


def test_a_mistyped_local_model_folder_lists_the_folders_there(tmp_path, monkeypatch):
    (tmp_path / "models" / "mobile-sam").mkdir(parents=True)
    (tmp_path / "models" / "mobile-sam" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as err:
        check_model_available("models/mobile_sam")
    text = str(err.value)
    assert "models/mobile_sam does not exist" in text and "Did you mean models/mobile-sam?" in text
    assert "hf download" not in text


def _root_with(tmp_path, bad: str):
    root = tmp_path / "pranet"
    for i in range(3):
        write_pair(root / "TrainDataset", str(30 * (i + 1)), blob_mask(20, 20, [(2, 2, 9, 9)]))
    if bad == "missing mask":
        (root / "TrainDataset" / "masks" / "30.png").unlink()
    else:
        (root / "TrainDataset" / "masks" / "30.png").write_bytes(b"not a png")
    return root


@pytest.mark.parametrize("bad", ["missing mask", "corrupt mask"])
def test_a_bad_file_stops_prepare_unless_skip_bad_files_is_given(bad, tmp_path, capsys):
    root = _root_with(tmp_path, bad)
    assert cli_main(["prepare", "--data_root", str(root), "--output_dir", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "30" in err and "--skip_bad_files" in err
    assert cli_main(["prepare", "--data_root", str(root), "--output_dir", str(tmp_path / "b"), "--skip_bad_files"]) == 0
    out = capsys.readouterr().out
    assert "Skipped files: 1" in out and "30.png" in out


@pytest.mark.parametrize("scheduler", ["reduce_lr_on_plateau", "greedy", "cosine_with_min_lr", "warmup_stable_decay"])
def test_schedulers_that_cannot_run_from_the_step_counts_alone_are_refused(scheduler):
    with pytest.raises(SystemExit):  # argparse: not one of the choices, listed in the message
        parse_config(["--lr_scheduler_type", scheduler])


def test_command_help_shows_defaults_but_no_empty_ones(capsys):
    with pytest.raises(SystemExit):
        cli_main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: box)" in text and "--model_name_or_path MODEL_NAME_OR_PATH Hub id, folder, or built-in name --image" in text
    assert "default: None" not in text
