"""The split belongs to the data: a run records the split it trained on and `evaluate` reads it back,
so a training seed never moves a test frame into training; `prepare` records it and writes safely."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import train_args
from PIL import Image

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.commands.train import main as train_main
from polyp_sam_hf.data.loading import SPLIT_RECORD, load_polyp_data
from polyp_sam_hf.data.splits import SplitSettings
from polyp_sam_hf.data.synthetic import synth_frame
from polyp_sam_hf.training import loop as training
from polyp_sam_hf.training.config import parse_config


@pytest.fixture(scope="module")
def clinicdb_release(tmp_path_factory):
    """An original CVC-ClinicDB release (no split of its own): 24 frames, one from each of 24 video
    sequences (frame numbers 25, 50, ...), 22 train under `paper-random`."""
    db = tmp_path_factory.mktemp("release") / "CVC-ClinicDB"
    (db / "Original").mkdir(parents=True)
    (db / "Ground Truth").mkdir()
    rng = np.random.default_rng(0)
    for i in range(25, 625, 25):
        image, mask = synth_frame(rng, height=48, width=64)
        Image.fromarray(image).save(db / "Original" / f"{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(db / "Ground Truth" / f"{i}.png")
    return db.parent


def _test_ids(root, seed):
    return set(list(load_polyp_data(root, "paper-random", 0.2, seed)["test"]["image_id"]))


def test_a_seed_sweep_never_trains_on_a_test_frame(clinicdb_release, tmp_path, monkeypatch):
    # the check has teeth: drawn with the training seed, the test frames would differ
    assert _test_ids(clinicdb_release, 7) != _test_ids(clinicdb_release, 42)
    seen: list[str] = []
    real_select = training._select

    def spy(dataset, data_args):
        dataset = real_select(dataset, data_args)
        seen.extend(list(dataset["train"]["image_id"]) + list(dataset["validation"]["image_id"]))
        return dataset

    monkeypatch.setattr(training, "_select", spy)
    out = tmp_path / "run"
    training.train(*parse_config(train_args(clinicdb_release, out, "--seed", "7", "--max_train_steps", "1",
                                            "--split_preset", "paper-random")))
    record = json.loads((out / "best" / "polyp_sam_training.json").read_text())
    assert (record["seed"], record["split_seed"], record["split_preset"]) == (7, 42, "paper-random")

    assert cli_main(["evaluate", "--model_name_or_path", str(out / "best"), "--data", str(clinicdb_release),
                     "--output_dir", str(tmp_path / "eval"), "--prompt_mode", "box"]) == 0
    tested = {row["image_id"] for row in csv.DictReader(open(tmp_path / "eval" / "per_image.csv"))}
    assert tested == _test_ids(clinicdb_release, 42) and len(seen) == 22
    assert not tested & set(seen)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["settings"]["data_split"] == {"preset": "paper-random", "val_fraction": 0.2, "seed": 42}

    # a split flag that contradicts the run's record is refused, naming both
    code = cli_main(["evaluate", "--model_name_or_path", str(out / "best"), "--data", str(clinicdb_release),
                     "--output_dir", str(tmp_path / "eval2"), "--split_seed", "7"])
    assert code == 1


def test_a_flag_that_contradicts_the_recorded_split_is_refused(tmp_path):
    from polyp_sam_hf.commands.evaluate import EvaluateArguments, resolve_split

    record = {"split_preset": "paper", "val_fraction": 0.2, "split_seed": 7}
    assert resolve_split(EvaluateArguments(model_name_or_path="m", data="d", output_dir="o"), record).seed == 7
    with pytest.raises(ValueError, match="split seed 7.*would score frames it trained on"):
        resolve_split(EvaluateArguments(model_name_or_path="m", data="d", output_dir="o", split_seed=42), record)
    # no record (a Hub model): the flags, or the defaults
    assert resolve_split(EvaluateArguments(model_name_or_path="m", data="d", output_dir="o", split_seed=3), None).seed == 3
    assert resolve_split(EvaluateArguments(model_name_or_path="m", data="d", output_dir="o"), None) == SplitSettings()


def test_training_records_the_split_a_prepared_dataset_holds(prepared_demo, tmp_path):
    """The settings' split applies to raw roots only; a run on prepared data records the data's own."""
    out = tmp_path / "run"
    training.train(*parse_config(train_args(prepared_demo, out, "--max_train_steps", "1", "--val_fraction", "0.5",
                                            "--split_seed", "3")))
    record = json.loads((out / "best" / "polyp_sam_training.json").read_text())
    assert json.loads((prepared_demo / SPLIT_RECORD).read_text()) == {"preset": "paper", "val_fraction": 0.25, "seed": 42,
                                                                     "min_polyp_area": 10}
    assert (record["split_preset"], record["val_fraction"], record["split_seed"]) == ("paper", 0.25, 42)


# ----------------------------------------------------------------------------- prepare writes safely

def _prepare(root, output, *extra):
    return cli_main(["prepare", "--data_root", str(root), "--output_dir", str(output), *extra])


def test_prepare_records_its_split(clinicdb_release, tmp_path):
    from polyp_sam_hf.data.loading import recorded_min_polyp_area

    assert _prepare(clinicdb_release, tmp_path / "p", "--split_seed", "5", "--val_fraction", "0.25",
                    "--min_polyp_area", "7") == 0
    assert json.loads((tmp_path / "p" / SPLIT_RECORD).read_text()) == {"preset": "paper", "val_fraction": 0.25,
                                                                      "seed": 5, "min_polyp_area": 7}
    assert recorded_min_polyp_area(tmp_path / "p") == 7 and recorded_min_polyp_area(clinicdb_release) == 10


@pytest.mark.parametrize("case", ["user folder", "prepared, no --overwrite_output_dir", "inside the data root", "a file"])
def test_prepare_refuses_to_lose_what_is_there(case, clinicdb_release, tmp_path, capsys):
    target = tmp_path / "out"
    if case == "user folder":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    elif case == "prepared, no --overwrite_output_dir":
        assert _prepare(clinicdb_release, target) == 0
    elif case == "inside the data root":
        target = clinicdb_release / "prepared"
    else:
        target.write_text("mine")
    def state():
        if target.is_dir():
            return sorted(p.name for p in target.iterdir())
        return target.read_text() if target.exists() else None

    before = state()
    assert _prepare(clinicdb_release, target, "--split_seed", "9") == 1
    err = capsys.readouterr().err
    assert str(target) in err and "nothing was" in err
    assert state() == before


def test_prepare_overwrite_replaces_a_prepared_dataset_whole(clinicdb_release, tmp_path, monkeypatch):
    import datasets

    target = tmp_path / "out"
    assert _prepare(clinicdb_release, target, "--split_seed", "1") == 0
    first = datasets.load_from_disk(str(target))["test"]["image_id"]
    # killed while saving: the earlier dataset is untouched, and nothing half-written is left in place
    real = datasets.DatasetDict.save_to_disk

    def dies(self, path, **kwargs):
        real(self, path, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", dies)
    with pytest.raises(KeyboardInterrupt):
        _prepare(clinicdb_release, target, "--split_seed", "2", "--overwrite_output_dir")
    assert datasets.load_from_disk(str(target))["test"]["image_id"] == first
    assert json.loads((target / SPLIT_RECORD).read_text())["seed"] == 1
    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", real)
    assert _prepare(clinicdb_release, target, "--split_seed", "2", "--overwrite_output_dir") == 0
    assert json.loads((target / SPLIT_RECORD).read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left beside it


@pytest.mark.parametrize("case", ["no box column", "empty validation split", "one Dataset", "damaged arrow"])
def test_a_bad_prepared_dataset_is_named_with_what_to_do(case, prepared_demo, tmp_path, capsys):
    import shutil

    import datasets

    target = tmp_path / "data"
    ds = datasets.load_from_disk(str(prepared_demo))
    if case == "no box column":
        ds.remove_columns(["box"]).save_to_disk(str(target))
    elif case == "empty validation split":
        ds["validation"] = ds["validation"].select([])
        ds.save_to_disk(str(target))
    elif case == "one Dataset":
        ds["train"].save_to_disk(str(target))
        (target / "dataset_dict.json").write_text('{"splits": ["train"]}')
    else:
        shutil.copytree(prepared_demo, target)
        for arrow in target.rglob("*.arrow"):
            arrow.write_bytes(arrow.read_bytes()[:100])
    code = train_main(train_args(target, tmp_path / "run", "--max_train_steps", "1"))
    err = capsys.readouterr().err
    assert code == 1 and str(target) in err and "Traceback" not in err
    assert "polyp-sam prepare" in err
    if case == "no box column":
        assert "lacks the column(s) box" in err


def test_training_rows_without_a_box_are_refused_or_left_out(prepared_demo, tmp_path, capsys, caplog):
    import datasets

    ds = datasets.load_from_disk(str(prepared_demo))
    none_box = ds["train"].map(lambda row: {"box": None})
    all_null = datasets.DatasetDict({"train": none_box, "validation": ds["validation"]})
    all_null.save_to_disk(str(tmp_path / "null"))
    assert train_main(train_args(tmp_path / "null", tmp_path / "run1", "--max_train_steps", "1")) == 1
    assert "no 'train' row has a box" in capsys.readouterr().err
    some = ds["train"].map(lambda row, i: {"box": None if i < 3 else row["box"]}, with_indices=True)
    datasets.DatasetDict({"train": some, "validation": ds["validation"]}).save_to_disk(str(tmp_path / "some"))
    with caplog.at_level("WARNING"):
        training.train(*parse_config(train_args(tmp_path / "some", tmp_path / "run2", "--max_train_steps", "1")))
    assert any("3 train rows have no box" in r.getMessage() for r in caplog.records)
