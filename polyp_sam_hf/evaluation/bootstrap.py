"""How far two evaluations of the same test frames differ, beyond the luck of which frames were drawn:
a paired bootstrap over the frames.

Each evaluation's per_image.csv (written by `polyp-sam evaluate`) gives one Dice per frame; frames
pair by dataset and image id. Resampling the frames with replacement, per group (a dataset, or a
video study of a dataset that records them), gives the 95% interval of the mean of B - A and of B's
own mean. A difference whose interval holds 0 is not settled by these frames. Frames with an empty
mask are left out, as every mean of `evaluate` leaves them out.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from polyp_sam_hf.core.errors import DataError
from polyp_sam_hf.core.registry import lookup
from polyp_sam_hf.data.prompts import current_prompt_mode_name
from polyp_sam_hf.data.sources import get_source

Frame = tuple[str, str]  # (source, image_id)

def _study(frame: Frame) -> str:
    """A frame's video study (`cvc-colondb study 4`), or its dataset where the dataset records none."""
    source = get_source(frame[0])
    return f"{frame[0]} study {source.sequence_of(frame[1])}" if source.has_sequences else frame[0]


# how frames are grouped for the table: a dataset, or a video study within a dataset that records them
GROUPINGS: dict[str, Callable[[Frame], str]] = {"dataset": lambda frame: frame[0], "sequence": _study}


def read_frame_scores(folder: str | Path, method: str = "model", prompt_mode: str = "box",
                      clicks: int = 0) -> dict[Frame, float]:
    """{(source, image id): Dice} of one method and prompt mode at no box jitter, from `folder`/per_image.csv.

    `clicks`: the rows after that many evaluation clicks from the prompt (`evaluate --clicks` writes one
    row per frame for each of 1, 2, 3, 5 and 10 beside the prompt's own, 0; files without clicks hold 0 only).

    Raises:
        DataError: no per_image.csv there, or no row of that method, mode and clicks.
    """
    path = Path(folder) / "per_image.csv"
    if not path.is_file():
        raise DataError(f"No {path}: give a folder that `polyp-sam evaluate --output_dir` wrote.")
    scores = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if (row["method"] == method and current_prompt_mode_name(row["prompt_mode"]) == prompt_mode
                    and float(row["box_jitter"]) == 0 and row["empty_mask"] != "True"
                    and int(row.get("clicks") or 0) == clicks):
                scores[row["source"], row["image_id"]] = float(row["dice"])
    if not scores:
        after = f" after {clicks} clicks" if clicks else ""
        raise DataError(f"{path} has no rows of method {method!r} with prompt mode {prompt_mode!r}{after}.")
    return scores


def mean_interval(values: np.ndarray, draws: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the mean of `values` (n,) over resampled indices `draws` (R, n)."""
    means = values[draws].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def paired_bootstrap(a: dict[Frame, float], b: dict[Frame, float], resamples: int = 10_000, seed: int = 0,
                     by: str = "dataset") -> dict[str, dict]:
    """Per group (and `all`): the mean Dice of A and B, B - A with its 95% interval, how many frames B
    scores better and worse, and B's own 95% interval.

    Raises:
        DataError: the two evaluations scored different frames.
    """
    group_of = lookup(GROUPINGS, by, "grouping")
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())[:5]
        raise DataError(f"The two evaluations scored different frames (for example {only}): evaluate both on the "
                        "same dataset.")
    rng = np.random.default_rng(seed)
    groups = sorted({group_of(k) for k in a}, key=lambda g: (g.split(" study ")[0], _numeric(g)))
    out = {}
    for group in [*groups, "all"]:
        keys = sorted(k for k in a if group in ("all", group_of(k)))
        ours, theirs = np.array([a[k] for k in keys]), np.array([b[k] for k in keys])
        diff = theirs - ours
        draws = rng.integers(0, len(keys), (resamples, len(keys)))
        out[group] = {
            "n": len(keys),
            "dice_a": round(float(ours.mean()), 4),
            "dice_b": round(float(theirs.mean()), 4),
            "difference": round(float(diff.mean()), 4),
            "difference_95": [round(x, 4) for x in mean_interval(diff, draws)],
            "b_better": int((diff > 0).sum()),
            "b_worse": int((diff < 0).sum()),
            "dice_b_95": [round(x, 4) for x in mean_interval(theirs, draws)],
        }
    return out


def _numeric(group: str) -> tuple:
    tail = group.rsplit(" ", 1)[-1]
    return (0, int(tail)) if tail.isdigit() else (1, tail)


def bootstrap_markdown(result: dict[str, dict], a: str, b: str) -> str:
    """The result as a markdown table."""
    lines = [f"B = {b}, A = {a}", "",
             "| group | frames | A | B | B - A (95% interval) | B better / worse | B (95% interval) |",
             "|---|---|---|---|---|---|---|"]
    for group, r in result.items():
        low, high = r["difference_95"]
        lines.append(f"| {group} | {r['n']} | {r['dice_a']:.4f} | {r['dice_b']:.4f} | {r['difference']:+.4f} "
                     f"({low:+.4f} to {high:+.4f}) | {r['b_better']} / {r['b_worse']} | "
                     f"{r['dice_b_95'][0]:.4f} to {r['dice_b_95'][1]:.4f} |")
    return "\n".join(lines)
