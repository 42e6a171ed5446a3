"""Split presets: PraNet's published test lists, seeded draws, and whole video sequences."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from polyp_sam_hf.data.layouts import PairRecord, discover
from polyp_sam_hf.data.sources import SOURCES
from polyp_sam_hf.data.splits import assign_splits, get_split_preset, pranet_test_ids

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "polyp-data"
CLINICDB = SOURCES["cvc-clinicdb"]


def _release(source: str, ids) -> list[PairRecord]:
    return [PairRecord(source, str(i), Path(f"{i}.png"), Path(f"{i}.png"), "any") for i in ids]


def _sequences(pairs) -> set[str]:
    return {CLINICDB.sequence_of(p.image_id) for p in pairs if p.source == "cvc-clinicdb"}


def test_the_shipped_pranet_lists_hold_100_kvasir_and_62_clinicdb_frames():
    ids = pranet_test_ids()
    assert (len(ids["kvasir"]), len(ids["cvc-clinicdb"])) == (100, 62)
    assert all(int(i) in range(1, 613) for i in ids["cvc-clinicdb"])


@pytest.mark.parametrize("frame, sequence", [("1", "1"), ("25", "1"), ("26", "2"), ("205", "10"), ("206", "11"),
                                             ("612", "29")])
def test_clinicdb_frames_map_to_the_release_readme_sequences(frame, sequence):
    assert CLINICDB.sequence_of(frame) == sequence


def test_paper_tests_on_pranet_lists_and_validates_clinicdb_by_whole_sequence():
    pairs = _release("cvc-clinicdb", range(1, 613))
    splits, _ = assign_splits(pairs, get_split_preset("paper"), 0.2, seed=0)
    assert {p.image_id for p in splits["test"]} == pranet_test_ids()["cvc-clinicdb"]
    assert len(splits["train"]) + len(splits["validation"]) == 550
    assert abs(len(splits["validation"]) - 110) <= 12  # whole sequences: about a fifth
    assert not _sequences(splits["train"]) & _sequences(splits["validation"])


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_paper_sequences_tests_clinicdb_on_held_out_sequences(seed):
    pairs = _release("cvc-clinicdb", range(1, 613))
    splits, _ = assign_splits(pairs, get_split_preset("paper-sequences"), 0.2, seed)
    test, train, val = (_sequences(splits[s]) for s in ("test", "train", "validation"))
    assert not test & (train | val) and not train & val
    assert abs(len(splits["test"]) - 62) <= 12
    # every frame of a tested sequence tests
    assert all(CLINICDB.sequence_of(p.image_id) not in test for p in splits["train"] + splits["validation"])


def test_paper_random_draws_by_seed_and_paper_does_not():
    pairs = _release("kvasir", [f"{i:025d}" for i in range(50)])
    drawn = [{p.image_id for p in assign_splits(pairs, get_split_preset("paper-random"), 0.2, s)[0]["test"]}
             for s in (1, 2)]
    assert drawn[0] != drawn[1] and all(len(d) == 5 for d in drawn)


def test_paper_on_a_release_without_any_listed_frame_says_so(caplog):
    pairs = _release("kvasir", [f"{i:025d}" for i in range(10)])
    with caplog.at_level(logging.WARNING):
        splits, _ = assign_splits(pairs, get_split_preset("paper"), 0.2, 0)
    assert not splits["test"] and "paper-random" in caplog.text


def test_a_source_that_only_tests_is_not_warned_about_validation(caplog):
    """CVC-ColonDB in the paper's split is all test frames: no "too few whole video sequences" warning."""
    pairs = _release("cvc-colondb", [str(i) for i in range(1, 41)]) + _release("kvasir", [f"{i:025d}" for i in range(10)])
    with caplog.at_level(logging.WARNING):
        splits, _ = assign_splits(pairs, get_split_preset("paper"), 0.2, 0)
    assert sum(p.source == "cvc-colondb" for p in splits["test"]) == 40
    assert "validates" not in caplog.text


@pytest.mark.parametrize("frame, study", [("1", "1"), ("38", "1"), ("39", "2"), ("97", "5"), ("98", "6"),
                                          ("300", "15"), ("301", "4"), ("320", "4"), ("321", "8"), ("380", "13")])
def test_cvc_colondb_frames_belong_to_the_release_readmes_studies(frame, study):
    """The README numbers its 15 studies out of frame order (frames 301-380 are studies 4, 8, 12, 13)."""
    assert SOURCES["cvc-colondb"].sequence_of(frame) == study


def test_a_split_that_trains_on_cvc_colondb_keeps_its_studies_whole():
    pairs = _release("cvc-colondb", [str(i) for i in range(1, 381)])
    splits, _ = assign_splits([PairRecord(p.source, p.image_id, p.image_path, p.mask_path, "train") for p in pairs],
                              get_split_preset("paper"), 0.2, 3)
    studies = lambda name: {SOURCES["cvc-colondb"].sequence_of(p.image_id) for p in splits[name]}  # noqa: E731
    assert splits["validation"] and not studies("train") & studies("validation")


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data not found at {REAL_DATA} (see docs/data.md)")
def test_paper_split_of_the_real_releases_is_pranets_900_550_100_62():
    splits, left_out = assign_splits(discover(REAL_DATA).pairs, get_split_preset("paper"), 0.2, 42)
    count = lambda name, source: sum(p.source == source for p in splits[name])  # noqa: E731
    assert (count("test", "kvasir"), count("test", "cvc-clinicdb"), left_out) == (100, 62, 0)
    # all of CVC-ColonDB tests, and none of it trains or validates: the paper's held-out set
    assert (count("test", "cvc-colondb"), count("train", "cvc-colondb"), count("validation", "cvc-colondb")) == (380, 0, 0)
    assert count("train", "kvasir") + count("validation", "kvasir") == 900
    assert count("train", "cvc-clinicdb") + count("validation", "cvc-clinicdb") == 550
    assert {p.image_id for p in splits["test"] if p.source == "kvasir"} == pranet_test_ids()["kvasir"]
    assert not _sequences(splits["train"]) & _sequences(splits["validation"])
