"""The real polyp samples, where they are beside the checkout."""

from __future__ import annotations

import numpy as np

from polyp_sam_hf.data.prepare import prepare_dataset

# The extent of each mask file's pixels above 127, [x_min, y_min, x_max, y_max] inclusive, computed
# once with numpy (`ys, xs = np.nonzero(mask)`) from the files themselves and written out here
EXPECTED_BOXES = {
    ("etis", "105"): [417, 257, 435, 284],
    ("etis", "109"): [363, 349, 416, 429],
    ("etis", "133"): [209, 360, 279, 422],
    ("cvc-colondb", "102"): [88, 125, 213, 213],
    ("cvc-colondb", "131"): [422, 214, 487, 342],
    ("kvasir", "cju0qkwl35piu0993l0dewei2"): [39, 6, 429, 337],
    ("kvasir", "cju0qoxqj9q6s0835b43399p4"): [195, 285, 912, 1048],
    ("kvasir", "cju0qx73cjw570799j4n5cjze"): [188, 15, 542, 525],
}


def _check_rows(ds):
    checked = 0
    for split in ds.values():
        for row in split:
            mask = np.asarray(row["mask"])
            assert set(np.unique(mask)) <= {0, 255}
            assert row["image"].size == (row["width"], row["height"]) == row["mask"].size
            x0, y0, x1, y1 = row["box"]
            assert 0 <= x0 <= x1 < row["width"] and 0 <= y0 <= y1 < row["height"]
            expected = EXPECTED_BOXES.get((row["source"], row["image_id"]))
            if expected is not None:
                assert row["box"] == expected, (row["source"], row["image_id"])
                checked += 1
    return checked


def test_pranet_samples(samples_root):
    ds, report = prepare_dataset(samples_root / "pranet")
    assert _check_rows(ds) == 5
    etis = {r["image_id"]: r for r in ds["test"] if r["source"] == "etis"}
    assert len(etis["135"]["boxes"]) == 3 and len(etis["138"]["boxes"]) == 3
    assert len(etis["105"]["boxes"]) == 1
    assert report.counts[("test", "cvc-colondb")] == 10
    assert len(ds["train"]) + len(ds["validation"]) == 12


def test_original_kvasir_release(samples_root):
    ds, _ = prepare_dataset(samples_root / "original", split_preset="cross-colondb")
    rows = list(ds["train"]) + list(ds["validation"])
    assert len(rows) == 3 and {r["source"] for r in rows} == {"kvasir"}
    assert _check_rows(ds) == 3
    assert any((r["width"], r["height"]) == (1348, 1070) for r in rows)


def test_cvc_colondb_as_released(samples_root):
    """The release's one folder: frames `N.tiff`, masks `pN.tiff`, contours `cpN.tiff` (left out and
    listed as such), paired by number; the TIFF frames read as RGB and the masks as 0/255."""
    ds, report = prepare_dataset(samples_root / "colondb-release", split_preset="test-only")
    rows = {r["image_id"]: r for r in ds["test"]}
    assert set(rows) == {"5", "150", "320"} and {r["source"] for r in rows.values()} == {"cvc-colondb"}
    assert all((r["width"], r["height"]) == (574, 500) for r in rows.values())
    assert _check_rows(ds) == 0 and all(r["box"] is not None for r in rows.values())
    assert not [s for s in report.skipped if not s.release_file]  # nothing unpaired or unreadable
    text = report.format()
    assert "Left out 3 files the release ships beside the frames (the polyp's contour, not its mask)" in text
    assert "cp5.tiff" in text and "Skipped files: 0" in text
