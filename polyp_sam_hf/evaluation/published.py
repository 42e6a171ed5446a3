"""The paper's Tables 1-3 as data, and the paper runs that reproduce them.

Every value is as printed in Li, Hu, Yang 2023 (mean Dice, mIoU per test dataset); a test
compares this copy with the transcription shipped beside the paper, cell by cell. The tables:

- Table 1: Polyp-SAM-B trained two ways (mask decoder only, all components), paper split.
- Table 2: nine methods on the paper split (PraNet's: 900 Kvasir + 550 CVC-ClinicDB train).
- Table 3: nine methods trained on Kvasir + CVC-ClinicDB, tested on the held-out CVC-ColonDB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.core.registry import by_name

CITATION = "Li, Hu, Yang 2023, Polyp-SAM: Transfer SAM for Polyp Segmentation (arXiv:2305.00293)"


@dataclass(frozen=True)
class PublishedRow:
    """One printed row: (Dice, mIoU) per source id, for one method (and strategy) of one table."""

    table: int
    split: str  # the split preset it matches: `paper` or `cross-colondb`
    method: str
    strategy: str | None  # `decoder` or `full` for Polyp-SAM; None for the other methods
    reference: str
    values: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.method} ({self.strategy})" if self.strategy else self.method


TABLE_SPLITS = {1: "paper", 2: "paper", 3: "cross-colondb"}
TABLE_TITLES = {
    1: "Table 1: Polyp-SAM-B, mask decoder only vs all components (paper split)",
    2: "Table 2: nine methods on the paper split (900 Kvasir + 550 CVC-ClinicDB train)",
    3: "Table 3: trained on Kvasir + CVC-ClinicDB, tested on the held-out CVC-ColonDB",
}
REFERENCES = {
    "U-Net": "Ronneberger et al. 2015",
    "U-Net++": "Zhou et al. 2018",
    "DCRNet": "Yin et al. 2022",
    "C2FNet": "Sun et al. 2021",
    "LDNet": "Zhang et al. 2022",
    "Polyp-PVT": "Dong et al. 2021",
    "HSNet": "Zhang et al. 2022",
    "Polyp-SAM-B": "Li, Hu, Yang 2023",
    "Polyp-SAM-L": "Li, Hu, Yang 2023",
}
_ORDER = ("kvasir", "cvc-clinicdb", "cvc-colondb", "cvc-300", "etis")

# (table, method, strategy): Dice, mIoU for kvasir, cvc-clinicdb, cvc-colondb, cvc-300, etis
_TABLES_1_2 = {
    (1, "Polyp-SAM-B", "decoder"): (0.882, 0.835, 0.890, 0.837, 0.891, 0.835, 0.924, 0.882, 0.885, 0.834),
    (1, "Polyp-SAM-B", "full"): (0.902, 0.863, 0.921, 0.877, 0.894, 0.843, 0.924, 0.883, 0.903, 0.852),
    (2, "U-Net", None): (0.818, 0.746, 0.823, 0.755, 0.504, 0.436, 0.710, 0.627, 0.398, 0.335),
    (2, "U-Net++", None): (0.821, 0.744, 0.794, 0.729, 0.482, 0.408, 0.707, 0.624, 0.401, 0.344),
    (2, "DCRNet", None): (0.886, 0.825, 0.896, 0.844, 0.704, 0.631, 0.856, 0.788, 0.556, 0.496),
    (2, "C2FNet", None): (0.886, 0.831, 0.919, 0.872, 0.724, 0.650, 0.874, 0.801, 0.699, 0.624),
    (2, "LDNet", None): (0.887, 0.821, 0.881, 0.825, 0.740, 0.652, 0.869, 0.793, 0.645, 0.551),
    (2, "Polyp-PVT", None): (0.917, 0.864, 0.948, 0.905, 0.808, 0.727, 0.900, 0.833, 0.787, 0.706),
    (2, "HSNet", None): (0.926, 0.877, 0.937, 0.887, 0.810, 0.735, 0.903, 0.839, 0.808, 0.734),
    # Table 1's full column is the same run; the paper prints CVC-300 mIoU 0.883 there, 0.882 here
    (2, "Polyp-SAM-B", "full"): (0.902, 0.863, 0.921, 0.877, 0.894, 0.843, 0.924, 0.882, 0.903, 0.852),
    (2, "Polyp-SAM-L", "full"): (0.901, 0.864, 0.917, 0.874, 0.889, 0.838, 0.929, 0.889, 0.905, 0.860),
}
# Table 3 tests CVC-ColonDB only; the seven other methods repeat their Table 2 values
_TABLE_3 = {
    "U-Net": None, "U-Net++": None, "DCRNet": None, "C2FNet": None, "LDNet": None, "Polyp-PVT": None,
    "HSNet": None, "Polyp-SAM-B": (0.906, 0.855), "Polyp-SAM-L": (0.881, 0.825),
}


def _build() -> tuple[PublishedRow, ...]:
    rows = []
    for (table, method, strategy), flat in _TABLES_1_2.items():
        values = {source: (flat[2 * i], flat[2 * i + 1]) for i, source in enumerate(_ORDER)}
        rows.append(PublishedRow(table, TABLE_SPLITS[table], method, strategy, REFERENCES[method], values))
    table_2 = {row.method: row for row in rows if row.table == 2}
    for method, pair in _TABLE_3.items():
        strategy = "full" if method.startswith("Polyp-SAM") else None
        pair = pair or table_2[method].values["cvc-colondb"]
        rows.append(PublishedRow(3, "cross-colondb", method, strategy, REFERENCES[method], {"cvc-colondb": pair}))
    return tuple(rows)


PUBLISHED: tuple[PublishedRow, ...] = _build()


def table_rows(table: int) -> list[PublishedRow]:
    """The rows of one table, in the paper's order."""
    if table not in TABLE_SPLITS:
        raise ConfigError(f"The paper has Tables {', '.join(map(str, TABLE_SPLITS))}; there is no Table {table}.")
    return [row for row in PUBLISHED if row.table == table]


# Table 3 tests on CVC-ColonDB, which no split of this library trains on (its frames only test): a run
# of another split scored on it stands beside Table 3's rows too, with what it trained on said
HELD_OUT_TABLE, HELD_OUT_SOURCE = 3, "cvc-colondb"


def tables_for_split(split: str | None) -> tuple[int, ...]:
    """The tables a run of this split preset compares with, the main one first (none: `()`)."""
    return {"paper": (2, 1), "cross-colondb": (3,)}.get(split or "", ())


# the Polyp-SAM row a model fine-tuned from this Hub checkpoint compares with
BACKBONE_METHODS = {"facebook/sam-vit-base": "Polyp-SAM-B", "facebook/sam-vit-large": "Polyp-SAM-L"}


@dataclass(frozen=True)
class PaperRun:
    """One training run of the paper, reproduced by `configs/paper/<name>.yaml`."""

    name: str
    table: int
    method: str
    strategy: str

    @property
    def split(self) -> str:
        return TABLE_SPLITS[self.table]

    @property
    def row(self) -> PublishedRow:
        return next(r for r in table_rows(self.table) if (r.method, r.strategy) == (self.method, self.strategy))


PAPER_RUNS: dict[str, PaperRun] = by_name(
    PaperRun("table1-b-decoder", 1, "Polyp-SAM-B", "decoder"),
    PaperRun("table1-b-full", 1, "Polyp-SAM-B", "full"),
    PaperRun("table2-b-full", 2, "Polyp-SAM-B", "full"),
    PaperRun("table2-l-full", 2, "Polyp-SAM-L", "full"),
    PaperRun("table3-b-full", 3, "Polyp-SAM-B", "full"),
    PaperRun("table3-l-full", 3, "Polyp-SAM-L", "full"),
)
