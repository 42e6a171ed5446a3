"""Split presets: which pairs train, which validate, which test. A registry, one entry a preset."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..registry import lookup
from .layouts import PairRecord
from .sources import SOURCES


@dataclass(frozen=True)
class SplitPreset:
    """A train/test protocol.

    Attributes:
        name: the `--split-preset` value.
        description: one line for help texts and docs.
        test_sources: sources whose test images form the `test` split; others are left out.
        release_train_fraction: for original releases (which carry no split of their own), the
            fraction of each listed source that goes to training, seeded; the rest goes to test
            if the source is a test source. Sources not listed only test.
    """

    name: str
    description: str
    test_sources: tuple[str, ...]
    release_train_fraction: dict[str, float] = field(default_factory=dict)


SPLIT_PRESETS: dict[str, SplitPreset] = {
    preset.name: preset
    for preset in (
        SplitPreset(
            "paper",
            "Polyp-SAM Table 2: train on 900 Kvasir + 550 CVC-ClinicDB, test on the rest and on "
            "CVC-ColonDB, ETIS and CVC-300",
            tuple(SOURCES),
            # PraNet's counts: 900 of Kvasir's 1000 frames, 550 of CVC-ClinicDB's 612
            {"kvasir": 900 / 1000, "cvc-clinicdb": 550 / 612},
        ),
        SplitPreset(
            "cross-colondb",
            "Polyp-SAM Table 3: train on Kvasir + CVC-ClinicDB, test on CVC-ColonDB",
            ("cvc-colondb",),
            {"kvasir": 1.0, "cvc-clinicdb": 1.0},
        ),
        SplitPreset(
            "test-only",
            "every frame of an original-release root and every PraNet TestDataset frame tests: to score "
            "a model on a data root it never trained on (PraNet TrainDataset frames still train)",
            tuple(SOURCES),
        ),
    )
}


def get_split_preset(name: str) -> SplitPreset:
    """The preset called `name`; a `ValueError` lists the valid names otherwise."""
    return lookup(SPLIT_PRESETS, name, "split preset", "presets")


def _seeded_take(items: list[PairRecord], fraction: float, rng: np.random.Generator):
    """Split `items` (sorted by id first, so the result does not depend on disk order)."""
    items = sorted(items, key=lambda p: p.image_id)
    order = rng.permutation(len(items))
    count = int(round(fraction * len(items)))
    chosen = {int(i) for i in order[:count]}
    return (
        [p for i, p in enumerate(items) if i in chosen],
        [p for i, p in enumerate(items) if i not in chosen],
    )


def assign_splits(
    pairs: list[PairRecord], preset: SplitPreset, val_fraction: float, seed: int
) -> tuple[dict[str, list[PairRecord]], int]:
    """Divide pairs into `train`, `validation` and `test`.

    Training pairs are divided into train and validation per source (stratified), so every
    training source is in both. All draws are seeded and independent of file order.

    Returns:
        The three lists, and how many pairs the preset leaves out.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}.")
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
        items = release[source]
        fraction = preset.release_train_fraction.get(source, 0.0)
        train_part, rest = _seeded_take(items, fraction, rng)
        pool[source].extend(train_part)
        if source in preset.test_sources:
            test.extend(rest)
        else:
            left_out += len(rest)
    train: list[PairRecord] = []
    validation: list[PairRecord] = []
    for source in sorted(pool):
        val_part, train_part = _seeded_take(pool[source], val_fraction, rng)
        train.extend(train_part)
        validation.extend(val_part)
    return {"train": train, "validation": validation, "test": test}, left_out
