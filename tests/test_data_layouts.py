"""Finding pairs in both layouts, pairing by stem, and reporting what is left out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import KVASIR_IDS, blob_mask, write_pair
from PIL import Image

from polyp_sam_hf.data.layouts import discover
from polyp_sam_hf.data.reading import DataError
from polyp_sam_hf.data.sources import source_from_pranet_train_name


@pytest.mark.parametrize("stem,source", [
    ("cju0qkwl35piu0993l0dewei2", "kvasir"), ("118", "cvc-clinicdb"),
    ("cju0qkwl35piu0993l0dewei", None), ("12a", None), ("Cju0qkwl35piu0993l0dewei2", None),
])
def test_pranet_train_source_is_told_by_the_name(stem, source):
    assert source_from_pranet_train_name(stem) == source


def test_pranet_layout_sources_and_groups(pranet_root):
    found = discover(pranet_root)
    assert found.layout == "pranet"
    train = [p for p in found.pairs if p.group == "train"]
    assert sorted({p.source for p in train}) == ["cvc-clinicdb", "kvasir"]
    assert sum(p.source == "kvasir" for p in train) == 5
    test_sources = sorted({p.source for p in found.pairs if p.group == "test"})
    assert test_sources == ["cvc-300", "cvc-clinicdb", "cvc-colondb", "etis", "kvasir"]
    assert found.skipped == []


def test_pairs_by_stem_not_sorted_order(tmp_path):
    folder = tmp_path / "TestDataset" / "CVC-300"
    write_pair(folder, "1", blob_mask(10, 10, [(1, 1, 3, 3)]))
    write_pair(folder, "10", blob_mask(10, 10, [(5, 5, 8, 8)]))
    (folder / "masks" / "1.png").unlink()  # image 1 has no mask; mask 2 has no image
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / "masks" / "2.png")
    found = discover(tmp_path)
    assert [(p.image_id, p.mask_path.name) for p in found.pairs] == [("10", "10.png")]
    reasons = {s.path.split("/")[-1]: s.reason for s in found.skipped}
    assert "image without a mask" in reasons["1.png"] and "mask without an image" in reasons["2.png"]


def test_unknown_test_folder_is_reported_not_guessed(pranet_root):
    write_pair(pranet_root / "TestDataset" / "Kvasir-SEG-extra", "1", blob_mask(8, 8, [(1, 1, 2, 2)]))
    found = discover(pranet_root)
    assert any("Kvasir-SEG-extra" in s.path and "unknown dataset folder" in s.reason
               for s in found.skipped)
    assert all("Kvasir-SEG-extra" not in str(p.image_path) for p in found.pairs)


def test_train_name_of_unknown_source_is_reported(pranet_root):
    write_pair(pranet_root / "TrainDataset", "frame_7", blob_mask(8, 8, [(1, 1, 2, 2)]))
    found = discover(pranet_root)
    assert any(s.path.endswith("frame_7.png") and "cannot tell its source" in s.reason
               for s in found.skipped)


def test_duplicate_ids_are_an_error_naming_both(tmp_path):
    folder = tmp_path / "TestDataset" / "CVC-300"
    write_pair(folder, "4", blob_mask(10, 10, [(1, 1, 3, 3)]))
    write_pair(folder, "4", blob_mask(10, 10, [(1, 1, 3, 3)]), ext=".png", image_ext=".jpg")
    with pytest.raises(DataError, match=r"4\.jpg.*4\.png|4\.png.*4\.jpg"):
        discover(tmp_path)


@pytest.mark.parametrize("make", ["empty", "missing", "unrelated"])
def test_wrong_data_root_says_what_was_looked_for(tmp_path, make):
    root = tmp_path / "root"
    if make != "missing":
        root.mkdir()
    if make == "unrelated":
        (root / "photos").mkdir()
    with pytest.raises(DataError) as err:
        discover(root)
    message = str(err.value)
    assert str(root) in message
    if make != "missing":
        assert "TrainDataset" in message and "Kvasir-SEG" in message


def test_kvasir_release_with_json_boxes(tmp_path):
    root = tmp_path / "releases"
    kv = root / "Kvasir-SEG"
    for kid in KVASIR_IDS[:3]:
        write_pair(kv, kid, blob_mask(30, 40, [(5, 6, 20, 25)]), ext=".jpg")
    boxes = {
        KVASIR_IDS[0]: {"height": 30, "width": 40,
                        "bbox": [{"label": "polyp", "xmin": 4, "ymin": 5, "xmax": 12, "ymax": 14},
                                 {"label": "polyp", "xmin": 15, "ymin": 9, "xmax": 21, "ymax": 26}]},
    }
    (kv / "kavsir_bboxes.json").write_text(json.dumps(boxes))
    found = discover(root)
    assert found.layout == "release" and len(found.pairs) == 3
    by_id = {p.image_id: p for p in found.pairs}
    assert by_id[KVASIR_IDS[0]].json_box == ([4.0, 5.0, 21.0, 26.0], (40, 30))
    assert by_id[KVASIR_IDS[1]].json_box is None


@pytest.mark.parametrize("images,masks,ext", [
    ("Original", "Ground Truth", ".tif"),
    ("PNG/Original", "PNG/Ground Truth", ".png"),
    ("TIF/Original", "TIF/Ground Truth", ".tif"),
])
def test_clinicdb_release_folders(tmp_path, images, masks, ext):
    db = tmp_path / "CVC-ClinicDB"
    (db / images).mkdir(parents=True)
    (db / masks).mkdir(parents=True)
    for i in range(1, 4):
        Image.fromarray(np.full((12, 14, 3), 90, np.uint8)).save(db / images / f"{i}{ext}")
        Image.fromarray(blob_mask(12, 14, [(2, 2, 5, 5)]).astype(np.uint8) * 255).save(
            db / masks / f"{i}{ext}")
    for root in (tmp_path, db):  # the parent of the release, or the release itself
        found = discover(root)
        assert [p.image_id for p in found.pairs] == ["1", "2", "3"]
        assert {p.source for p in found.pairs} == {"cvc-clinicdb"}


def _tif(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="TIFF")


def test_etis_as_released_pairs_frame_n_with_ground_truth_pn(tmp_path):
    """ETIS-LaribPolypDB ships `ETIS-LaribPolypDB/N.tif` with `Ground Truth/pN.tif`."""
    import numpy as np

    from polyp_sam_hf.data.prepare import prepare_dataset

    root = tmp_path / "data" / "ETIS-LaribPolypDB"
    rng = np.random.default_rng(0)
    for n in (1, 2, 10):
        _tif(root / "ETIS-LaribPolypDB" / f"{n}.tif", rng.integers(0, 255, (24, 30, 3), dtype=np.uint8))
        mask = np.zeros((24, 30), np.uint8)
        mask[4 : 10 + n, 5:15] = 255
        _tif(root / "Ground Truth" / f"p{n}.tif", mask)
    ds, _ = prepare_dataset(tmp_path / "data", split_preset="test-only")
    boxes = {r["image_id"]: r["box"] for r in ds["test"]}
    assert boxes == {"1": [5, 4, 14, 10], "2": [5, 4, 14, 11], "10": [5, 4, 14, 19]}  # each frame its own mask
    (root / "Ground Truth" / "p2.tif").unlink()
    with pytest.raises(DataError, match=r"1 files have no partner: .*2\.tif: frame without its mask p2"):
        prepare_dataset(tmp_path / "data", split_preset="test-only")
