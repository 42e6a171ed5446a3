"""Split presets: which pairs train, which validate, which test. A registry, one entry a preset.

A data root in the PraNet layout carries its own train/test division. Original releases carry
none, so a preset says, per dataset, how a release's test frames are chosen (a `TestDraw`):
PraNet's published lists (the split Polyp-SAM's Table 2 uses), a seeded random fraction, or whole
held-out video sequences. Validation frames are drawn from the training frames per dataset; for a
dataset of video sequences (CVC-ClinicDB) by whole sequence, so no validation frame has a near
copy in training.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import numpy as np

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.core.registry import by_name, lookup
from polyp_sam_hf.data.layouts import PairRecord
from polyp_sam_hf.data.sources import SOURCES, get_source


@dataclass(frozen=True)
class SplitSettings:
    """How frames were divided: the split preset, the validation fraction and the split seed. The
    library's split defaults, written here only (`SplitSettings.preset` and so on elsewhere)."""

    preset: str = "paper"
    val_fraction: float = 0.2  # the paper's 80/20 train/validation, per training source
    seed: int = 42

logger = logging.getLogger(__name__)

# (train, test) from one dataset's release frames, sorted by id; the generator is seeded
TestDraw = Callable[[list[PairRecord], np.random.Generator], tuple[list[PairRecord], list[PairRecord]]]


@cache
def pranet_test_ids() -> dict[str, frozenset[str]]:
    """PraNet's test frames per source (`kvasir`: 100 ids, `cvc-clinicdb`: 62 frame numbers),
    shipped with the library as `pranet_test_split.json`."""
    text = resources.files(__package__).joinpath("pranet_test_split.json").read_text()
    return {name: frozenset(ids) for name, ids in json.loads(text).items() if name in SOURCES}


def _sequence_groups(items: list[PairRecord]) -> list[list[PairRecord]]:
    """Items grouped by video sequence (each frame alone where its dataset has none), in id order."""
    groups: dict[str, list[PairRecord]] = {}
    for pair in sorted(items, key=lambda p: p.image_id):
        groups.setdefault(get_source(pair.source).sequence_of(pair.image_id), []).append(pair)
    return list(groups.values())


def take_groups(items: list[PairRecord], count: int, rng: np.random.Generator) -> tuple[list, list]:
    """About `count` of `items` in whole sequences, seeded: (taken, rest).

    Sequences are visited in a seeded order; one is taken when that brings the total closer to
    `count`. For frames without sequences this is an exact seeded draw of `count` frames.
    """
    groups = _sequence_groups(items)
    taken: list[PairRecord] = []
    for g in rng.permutation(len(groups)):
        group = groups[int(g)]
        if abs(len(taken) + len(group) - count) < abs(len(taken) - count):
            taken.extend(group)
    chosen = {id(p) for p in taken}
    return taken, [p for p in sorted(items, key=lambda p: p.image_id) if id(p) not in chosen]


def take_groups_flat(items, count, rng):
    """An exact seeded draw of `count` frames, sequences ignored (the random protocol of PraNet)."""
    items = sorted(items, key=lambda p: p.image_id)
    chosen = {int(i) for i in rng.permutation(len(items))[:count]}
    return [p for i, p in enumerate(items) if i in chosen], [p for i, p in enumerate(items) if i not in chosen]


def pranet_list(items, rng):
    """PraNet's test frames test, every other frame trains."""
    listed = pranet_test_ids().get(items[0].source, frozenset()) if items else frozenset()
    if items and not any(p.image_id in listed for p in items):
        logger.warning("None of PraNet's %d test frames of %s are in this data root: all %d of its frames train. "
                       "Use --split_preset paper-random to test on a seeded draw instead.",
                       len(listed), items[0].source, len(items))
    return [p for p in items if p.image_id not in listed], [p for p in items if p.image_id in listed]


def random_fraction(train_fraction: float) -> TestDraw:
    """A seeded draw: `train_fraction` of the frames train, the rest test."""
    def draw(items, rng):  # the permutation's first frames train, as this preset always drew them
        return take_groups_flat(items, int(round(train_fraction * len(items))), rng)
    return draw


def held_out_sequences(test_frames: int) -> TestDraw:
    """About `test_frames` frames in whole video sequences test (seeded), the other sequences train."""
    def draw(items, rng):
        test, train = take_groups(items, test_frames, rng)
        return train, test
    return draw


def all_train(items, rng):
    """Every frame trains."""
    return list(items), []


def all_test(items, rng):
    """Every frame tests."""
    return [], list(items)


@dataclass(frozen=True)
class SplitPreset:
    """A train/test protocol.

    Attributes:
        name: the `--split_preset` value.
        description: one line for help texts and docs.
        test_sources: sources whose test frames form the `test` split; others are left out.
        release_tests: for original releases (which carry no split of their own), how each listed
            source's test frames are chosen; a source not listed only tests (`all_test`).
    """

    name: str
    description: str
    test_sources: tuple[str, ...]
    release_tests: dict[str, TestDraw] = field(default_factory=dict)


SPLIT_PRESETS: dict[str, SplitPreset] = by_name(
    SplitPreset(
        "paper",
        "Polyp-SAM Table 2: PraNet's split, train on 900 Kvasir + 550 CVC-ClinicDB, test on PraNet's "
        "100 + 62 and on CVC-ColonDB, ETIS and CVC-300",
        tuple(SOURCES),
        {"kvasir": pranet_list, "cvc-clinicdb": pranet_list},
    ),
    SplitPreset(
        "paper-random",
        "as paper, but a seeded random 900 of Kvasir's 1000 and 550 of CVC-ClinicDB's 612 frames train",
        tuple(SOURCES),
        {"kvasir": random_fraction(900 / 1000), "cvc-clinicdb": random_fraction(550 / 612)},
    ),
    SplitPreset(
        "paper-sequences",
        "as paper, but CVC-ClinicDB tests on about 62 frames of whole held-out video sequences, so no "
        "test frame has a near copy in training",
        tuple(SOURCES),
        {"kvasir": pranet_list, "cvc-clinicdb": held_out_sequences(62)},
    ),
    SplitPreset(
        "cross-colondb",
        "Polyp-SAM Table 3: train on Kvasir + CVC-ClinicDB, test on CVC-ColonDB",
        ("cvc-colondb",),
        {"kvasir": all_train, "cvc-clinicdb": all_train},
    ),
    SplitPreset(
        "test-only",
        "every frame of an original-release root and every PraNet TestDataset frame tests: to score "
        "a model on a data root it never trained on (PraNet TrainDataset frames still train)",
        tuple(SOURCES),
    ),
)


def get_split_preset(name: str) -> SplitPreset:
    """The preset called `name`; a `ValueError` lists the valid names otherwise."""
    return lookup(SPLIT_PRESETS, name, "split preset", "presets")


def assign_splits(
    pairs: list[PairRecord], preset: SplitPreset, val_fraction: float, seed: int, sequences: bool = True
) -> tuple[dict[str, list[PairRecord]], int]:
    """Divide pairs into `train`, `validation` and `test`.

    Training pairs are divided into train and validation per source (stratified), so every
    training source is in both; a source of video sequences by whole sequence, unless `sequences`
    is False (synthetic frames, which only borrow the datasets' names). All draws are seeded and
    independent of file order.

    Returns:
        The three lists, and how many pairs the preset leaves out.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val_fraction must be in [0, 1), got {val_fraction}.")
    rng = np.random.default_rng(seed)
    pool: dict[str, list[PairRecord]] = defaultdict(list)
    test: list[PairRecord] = []
    left_out = 0
    release: dict[str, list[PairRecord]] = defaultdict(list)
    for pair in pairs:
        if pair.group == "train":
            pool[pair.source].append(pair)
        elif pair.group == "any":
            release[pair.source].append(pair)
        elif pair.source in preset.test_sources:
            test.append(pair)
        else:
            left_out += 1
    for source in sorted(release):
        items = sorted(release[source], key=lambda p: p.image_id)
        train_part, rest = preset.release_tests.get(source, all_test)(items, rng)
        if train_part:  # a source that only tests (CVC-ColonDB in the paper's split) has no training frames
            pool[source].extend(train_part)
        if source in preset.test_sources:
            test.extend(rest)
        else:
            left_out += len(rest)
    train: list[PairRecord] = []
    validation: list[PairRecord] = []
    for source in sorted(pool):
        take = take_groups if sequences else take_groups_flat
        val_part, train_part = take(pool[source], int(round(val_fraction * len(pool[source]))), rng)
        if val_fraction > 0 and not val_part:
            logger.warning("No %s frame validates: its %d training frames are too few whole video sequences for "
                           "a %.0f%% validation part.", source, len(train_part), 100 * val_fraction)
        train.extend(train_part)
        validation.extend(val_part)
    return {"train": train, "validation": validation, "test": test}, left_out
