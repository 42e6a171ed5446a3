"""The DatasetDict: schema, splits, empty masks, bad files, the command line and its summary."""

from __future__ import annotations

import json
from unittest import mock

import datasets
import numpy as np
import pytest
from conftest import KVASIR_IDS, blob_mask, write_pair
from PIL import Image

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.data.prepare import FEATURES, prepare_dataset
from polyp_sam_hf.data.reading import DataError
from polyp_sam_hf.data.splits import get_split_preset


def test_schema_and_values(pranet_root):
    ds, report = prepare_dataset(pranet_root)
    assert set(ds) == {"train", "validation", "test"}
    for split in ds.values():
        assert split.features == FEATURES
    row = ds["train"].filter(lambda r: r["image_id"] == KVASIR_IDS[2])[0]
    assert row["source"] == "kvasir" and (row["width"], row["height"]) == (48, 40)
    assert row["box"] == [7.0, 6.0, 20.0, 30.0] and row["box_origin"] == "mask"
    assert row["boxes"] == [[7.0, 6.0, 20.0, 30.0]]
    assert row["image"].mode == "RGB" and row["image"].size == (48, 40)
    mask = np.asarray(row["mask"])
    assert row["mask"].mode == "L" and set(np.unique(mask)) == {0, 255}
    assert report.counts[("test", "etis")] == 2


def test_rows_streamed_to_disk_equal_rows_held_in_memory(pranet_root, tmp_path):
    # prepare's flat-memory path (rows written to Arrow as they are read) builds the same dataset
    held, held_report = prepare_dataset(pranet_root)
    streamed, streamed_report = prepare_dataset(pranet_root, work_dir=tmp_path / "rows")
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == sorted(f"{s}.arrow" for s in held)
    assert list(streamed) == list(held) and streamed_report.counts == held_report.counts
    for split in held:
        assert streamed[split].features == held[split].features
        assert streamed[split].cache_files and not held[split].cache_files  # memory-mapped, not in memory
        a, b = held[split].with_format("arrow")[:], streamed[split].with_format("arrow")[:]
        assert a.equals(b), split


def test_validation_is_stratified_seeded_and_disjoint(pranet_root):
    ds, _ = prepare_dataset(pranet_root, val_fraction=0.2, seed=1)
    val = ds["validation"]
    assert sorted(val["source"]) == ["cvc-clinicdb", "kvasir"]  # 1 of 5 from each source
    assert len(ds["train"]) == 8
    train_keys = set(zip(ds["train"]["source"], ds["train"]["image_id"]))
    assert not train_keys & set(zip(val["source"], val["image_id"]))
    again, _ = prepare_dataset(pranet_root, val_fraction=0.2, seed=1)
    assert again["validation"]["image_id"] == val["image_id"]
    other = {tuple(prepare_dataset(pranet_root, seed=s)[0]["validation"]["image_id"]) for s in range(6)}
    assert len(other) > 1  # the seed matters


def test_cross_colondb_preset_tests_on_colondb_only(pranet_root):
    ds, report = prepare_dataset(pranet_root, split_preset="cross-colondb")
    assert set(ds["test"]["source"]) == {"cvc-colondb"}
    assert len(ds["train"]) + len(ds["validation"]) == 10
    assert report.left_out_by_preset == 8
    with pytest.raises(ValueError, match="paper, paper-random, paper-sequences, cross-colondb"):
        get_split_preset("table-3")


def test_release_layout_split_counts(tmp_path):
    kv = tmp_path / "Kvasir-SEG"
    ids = [f"cju{i:022d}" for i in range(20)]
    for kid in ids:
        write_pair(kv, kid, blob_mask(16, 16, [(2, 2, 9, 9)]), ext=".jpg")
    ds, _ = prepare_dataset(tmp_path, split_preset="paper-random", val_fraction=0.25)
    assert len(ds["test"]) == 2  # 10% of Kvasir tests, as 100 of PraNet's 1000
    assert len(ds["train"]) + len(ds["validation"]) == 18
    assert len(ds["validation"]) == round(18 * 0.25)


def test_empty_masks_kept_in_test_dropped_from_training(pranet_root):
    empty = np.zeros((20, 20), dtype=bool)
    write_pair(pranet_root / "TrainDataset", "77", empty)
    write_pair(pranet_root / "TestDataset" / "CVC-300", "999", empty)
    ds, report = prepare_dataset(pranet_root, val_fraction=0.0)
    assert "77" not in ds["train"]["image_id"]
    assert report.empty_dropped[("train", "cvc-clinicdb")] == ["77"]
    row = ds["test"].filter(lambda r: r["image_id"] == "999")[0]
    assert row["box"] is None and row["boxes"] == [] and row["box_origin"] == "none"
    assert report.empty_kept["cvc-300"] == ["999"]
    assert "Dropped 1 cvc-clinicdb train rows with an empty mask: 77" in report.format()
    assert "Kept 1 cvc-300 test rows with an empty mask" in report.format() and ": 999" in report.format()


def test_report_names_the_first_few_and_the_saved_copy_all(pranet_root, tmp_path):
    from polyp_sam_hf.commands.cli import main as cli_main

    empty = np.zeros((20, 20), dtype=bool)
    for i in range(8):
        write_pair(pranet_root / "TestDataset" / "ETIS-LaribPolypDB", f"e{i}", empty)
    ds, report = prepare_dataset(pranet_root, val_fraction=0.0)
    short = report.format()
    assert "e0, e1, e2, e3, e4 ... (3 more in prepare_report.txt)" in short and "e7" not in short
    assert cli_main(["prepare", "--data_root", str(pranet_root), "--output_dir", str(tmp_path / "p")]) == 0
    saved = (tmp_path / "p" / "prepare_report.txt").read_text()
    assert "e0, e1, e2, e3, e4, e5, e6, e7" in saved


def test_kvasir_json_box_is_used_and_scaled(tmp_path):
    kv = tmp_path / "Kvasir-SEG"
    write_pair(kv, KVASIR_IDS[0], blob_mask(30, 40, [(5, 6, 20, 25)]), ext=".jpg")
    write_pair(kv, KVASIR_IDS[1], blob_mask(30, 40, [(5, 6, 20, 25)]), ext=".jpg")
    # boxes given for a frame twice the size: they are moved into this file's pixel frame
    boxes = {KVASIR_IDS[0]: {"height": 60, "width": 80,
                             "bbox": [{"label": "polyp", "xmin": 8, "ymin": 10, "xmax": 42, "ymax": 52}]}}
    (kv / "kavsir_bboxes.json").write_text(json.dumps(boxes))
    ds, _ = prepare_dataset(tmp_path, split_preset="cross-colondb", val_fraction=0.0)
    rows = {r["image_id"]: r for r in ds["train"]}
    assert rows[KVASIR_IDS[0]]["box"] == [4.0, 5.0, 21.0, 26.0]
    assert rows[KVASIR_IDS[0]]["box_origin"] == "kavsir_bboxes.json"
    assert rows[KVASIR_IDS[1]]["box_origin"] == "mask"


def test_broken_json_names_the_file(tmp_path):
    kv = tmp_path / "Kvasir-SEG"
    write_pair(kv, KVASIR_IDS[0], blob_mask(30, 40, [(5, 6, 20, 25)]))
    (kv / "kavsir_bboxes.json").write_text('{"x": {"height": 3}}')
    with pytest.raises(DataError, match="kavsir_bboxes.json"):
        prepare_dataset(tmp_path)


def _kvasir_entry(**box):
    return {"height": 30, "width": 40, "bbox": [{"label": "polyp", **box}]}


@pytest.mark.parametrize("case, content, message", [
    ("top-level list", [_kvasir_entry(xmin=5, ymin=6, xmax=20, ymax=25)], "holds a JSON list"),
    ("width 0", {"ID": {"height": 30, "width": 0, "bbox": [{"xmin": 1, "ymin": 1, "xmax": 2, "ymax": 2}]}},
     "size 0x30"),
    ("inverted box", {"ID": _kvasir_entry(xmin=20, ymin=6, xmax=5, ymax=25)}, "inverted box"),
    ("string coordinate", {"ID": _kvasir_entry(xmin="left", ymin=6, xmax=20, ymax=25)}, "malformed"),
    ("null bbox list", {"ID": {"height": 30, "width": 40, "bbox": [None]}}, "malformed"),
])
def test_bad_kvasir_json_is_an_error_naming_file_and_entry(case, content, message, tmp_path):
    kv = tmp_path / "Kvasir-SEG"
    write_pair(kv, KVASIR_IDS[0], blob_mask(30, 40, [(5, 6, 20, 25)]), ext=".jpg")
    (kv / "kavsir_bboxes.json").write_text(json.dumps(content).replace("ID", KVASIR_IDS[0]))
    with pytest.raises(DataError, match=message) as err:
        prepare_dataset(tmp_path, split_preset="cross-colondb", val_fraction=0.0)
    assert "kavsir_bboxes.json" in str(err.value)
    if case != "top-level list":
        assert KVASIR_IDS[0] in str(err.value)


def test_kvasir_json_box_far_from_the_mask_is_not_the_prompt(tmp_path):
    kv = tmp_path / "Kvasir-SEG"
    write_pair(kv, KVASIR_IDS[0], blob_mask(30, 40, [(5, 6, 20, 25)]), ext=".jpg")
    write_pair(kv, KVASIR_IDS[1], blob_mask(30, 40, [(5, 6, 20, 25)]), ext=".jpg")
    boxes = {KVASIR_IDS[0]: _kvasir_entry(xmin=25, ymin=0, xmax=39, ymax=8),  # another place: IoU 0
             KVASIR_IDS[1]: _kvasir_entry(xmin=4, ymin=6, xmax=21, ymax=24),  # a pixel off: kept
             KVASIR_IDS[2]: _kvasir_entry(xmin=4, ymin=6, xmax=21, ymax=24)}  # no such frame
    (kv / "kavsir_bboxes.json").write_text(json.dumps(boxes))
    ds, report = prepare_dataset(tmp_path, split_preset="cross-colondb", val_fraction=0.0)
    rows = {r["image_id"]: r for r in ds["train"]}
    assert rows[KVASIR_IDS[0]]["box"] == [5.0, 6.0, 20.0, 25.0] and rows[KVASIR_IDS[0]]["box_origin"] == "mask"
    assert rows[KVASIR_IDS[1]]["box"] == [4.0, 6.0, 21.0, 24.0]
    text = report.format()
    assert f"kvasir/{KVASIR_IDS[0]} (kavsir_bboxes.json box [25, 0, 39, 8] has IoU 0.00" in text
    assert f"1 entries name no Kvasir-SEG frame found here: {KVASIR_IDS[2]}" in text


def test_bad_pair_stops_or_is_skipped_on_request(pranet_root):
    folder = pranet_root / "TestDataset" / "CVC-300"
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "masks" / "100.png")  # wrong size
    with pytest.raises(DataError, match="100.png"):
        prepare_dataset(pranet_root)
    ds, report = prepare_dataset(pranet_root, skip_bad_files=True)
    assert "100" not in [r for r, s in zip(ds["test"]["image_id"], ds["test"]["source"]) if s == "cvc-300"]
    assert any("100.png" in s.path and "mask" in s.reason for s in report.skipped)


def test_cli_prepare_saves_loads_and_prints_summary(pranet_root, tmp_path, capsys):
    (pranet_root / "TrainDataset" / "images" / "readme.txt").write_text("x")
    out = tmp_path / "prepared"
    assert cli_main(["prepare", "--data_root", str(pranet_root), "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train" in printed and "kvasir" in printed and "readme.txt: not an image file" in printed
    loaded = datasets.load_from_disk(str(out))
    assert loaded["test"].num_rows == 10 and loaded["train"].features == FEATURES


def test_cli_reports_a_wrong_root_without_a_traceback(tmp_path, capsys):
    assert cli_main(["prepare", "--data_root", str(tmp_path), "--output_dir", str(tmp_path / "o")]) == 1
    assert "No polyp dataset found" in capsys.readouterr().err


def test_push_to_hub_is_private_by_default(pranet_root, tmp_path):
    with mock.patch.object(datasets.DatasetDict, "push_to_hub") as push:
        cli_main(["prepare", "--data_root", str(pranet_root), "--output_dir", str(tmp_path / "o"),
                  "--hub_dataset_id", "me/polyps"])
    push.assert_called_once_with("me/polyps", private=True)


def test_empty_split_is_left_out_and_the_rest_saves_and_loads(pranet_root, tmp_path, capsys):
    out = tmp_path / "prepared"
    assert cli_main(["prepare", "--data_root", str(pranet_root), "--output_dir", str(out), "--val_fraction", "0"]) == 0
    assert "Split 'validation' has no rows" in capsys.readouterr().out
    loaded = datasets.load_from_disk(str(out))
    assert set(loaded) == {"train", "test"} and loaded["train"].num_rows == 10
