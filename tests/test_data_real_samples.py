"""The real polyp samples, where they are beside the checkout."""

from __future__ import annotations

import numpy as np

from polyp_sam_hf.data.prepare import prepare_dataset
from polyp_sam_hf.data.prompts import mask_to_box


def _check_rows(ds):
    for split in ds.values():
        for row in split:
            mask = np.asarray(row["mask"])
            assert set(np.unique(mask)) <= {0, 255}
            assert row["box"] == mask_to_box(mask > 0)
            assert row["image"].size == (row["width"], row["height"]) == row["mask"].size


def test_pranet_samples(samples_root):
    ds, report = prepare_dataset(samples_root / "pranet")
    _check_rows(ds)
    etis = {r["image_id"]: r for r in ds["test"] if r["source"] == "etis"}
    assert len(etis["135"]["boxes"]) == 3 and len(etis["138"]["boxes"]) == 3
    assert len(etis["105"]["boxes"]) == 1
    assert report.counts[("test", "cvc-colondb")] == 10
    assert len(ds["train"]) + len(ds["validation"]) == 12


def test_original_kvasir_release(samples_root):
    ds, _ = prepare_dataset(samples_root / "original", split_preset="cross-colondb")
    rows = list(ds["train"]) + list(ds["validation"])
    assert len(rows) == 3 and {r["source"] for r in rows} == {"kvasir"}
    _check_rows(ds)
    assert any((r["width"], r["height"]) == (1348, 1070) for r in rows)
