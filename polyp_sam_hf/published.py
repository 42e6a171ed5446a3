"""The comparison rows of the paper's Table 2, and `results.md` laid out like it.

Published values are kept here as data, one row per method with the reference it comes from.
A value that has not been checked against the printed table is `None` and shows as `n/a`:
a wrong published number is worse than a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data.sources import SOURCES


@dataclass(frozen=True)
class PublishedRow:
    """One method's row: (mean Dice, mIoU) per source, as printed; `None` where not verified."""

    method: str
    reference: str
    values: dict[str, tuple[float, float]] = field(default_factory=dict)


# Li, Hu, Yang 2023, Table 2 lists these methods. Their numbers were not available to verify
# when this file was written; fill `values` from the printed table (source -> (dice, miou)).
PUBLISHED: tuple[PublishedRow, ...] = (
    PublishedRow("U-Net", "Ronneberger et al., MICCAI 2015"),
    PublishedRow("U-Net++", "Zhou et al., DLMIA 2018"),
    PublishedRow("DCRNet", "Yin et al., ISBI 2022"),
    PublishedRow("C2FNet", "Sun et al., IJCAI 2021"),
    PublishedRow("LDNet", "Zhang et al., MICCAI 2022"),
    PublishedRow("Polyp-PVT", "Dong et al., CAAI AIR 2023"),
    PublishedRow("HSNet", "Zhang et al., CBM 2022"),
    PublishedRow("Polyp-SAM-B", "Li, Hu, Yang 2023"),
    PublishedRow("Polyp-SAM-L", "Li, Hu, Yang 2023"),
)

BASELINE_NOTE = (
    "Box-only baselines use the same boxes as the model and nothing of the image: `ellipse` is the "
    "ellipse inscribed in each box, `box` the filled box. On real polyps the ellipse alone reaches a "
    "Dice near 0.85-0.9, so a box-prompted model is worth what it adds over that row."
)


def _cells(values: dict | None, sources: list[str]) -> list[str]:
    cells = []
    for source in sources:
        pair = (values or {}).get(source)
        if pair is None:
            cells += ["n/a", "n/a"]
        else:
            cells += [f"{pair[0]:.3f}", f"{pair[1]:.3f}"]
    return cells


def _short(name: str) -> str:
    """A Hub id as is; a local path as its last two parts (`run/best`)."""
    from pathlib import Path

    path = Path(name)
    return "/".join(path.parts[-2:]) if path.exists() else name


def results_markdown(metrics: dict, model_name: str) -> str:
    """`results.md`: one row per method, Dice and mIoU per dataset, as the paper's Table 2.

    Rows: the published methods (marked *published*), this run's model for each prompt mode, and
    the box-only baselines on the same frames, all at the first jitter level.
    """
    model_name = _short(model_name)
    results = metrics["results"]
    level = str(metrics["primary"]["box_jitter"])
    present = {s for mode in results["model"].values() for s in mode[level] if s != "all"}
    sources = [s for s in SOURCES if s in present]
    header = ["Method", "Kind"] + [f"{SOURCES[s].display_name} {m}" for s in sources for m in ("Dice", "mIoU")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in PUBLISHED:
        lines.append("| " + " | ".join([row.method, f"published ({row.reference})"] + _cells(row.values, sources)) + " |")

    def run_row(method: str, mode: str, label: str, kind: str) -> str:
        per_source = results[method][mode][level]
        values = {s: (per_source[s]["dice"], per_source[s]["miou"]) for s in sources if s in per_source}
        return "| " + " | ".join([label, kind] + _cells(values, sources)) + " |"

    for mode in results["model"]:
        lines.append(run_row("model", mode, f"**{model_name}** ({mode} box)", "this run"))
    primary_mode = metrics["primary"]["prompt_mode"]
    for name in (m for m in results if m != "model"):
        lines.append(run_row(name, primary_mode, f"{name} from box ({primary_mode})", "baseline, this run"))
    settings = metrics["settings"]
    counts = ", ".join(f"{SOURCES[s].display_name} {results['model'][primary_mode][level][s]['n']}" for s in sources)
    return "\n".join([
        f"# Results: {model_name}",
        "",
        f"Protocol `{settings['protocol']}`, split `{settings['split']}`, box jitter {level}. Frames: {counts}.",
        "",
        *lines,
        "",
        BASELINE_NOTE,
        "",
        "Published rows are as printed in Li, Hu, Yang 2023 (Table 2); `n/a` marks a value not "
        "bundled with this version of the library.",
        "",
    ])
