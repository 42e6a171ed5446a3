"""How many clicks a polyp needs: the evaluation clicker (`data.clicks.evaluation_click`) on every frame.

From each start (`CLICK_STARTS`), the model is prompted, the clicker looks at the error of its mask
over the whole frame and clicks at the point deepest inside the largest error region (positive on
missed polyp, negative on false polyp); the clicks so far and the previous low-resolution logits
(the dense prompt) prompt the model again, `clicks` times:

- `clicks`: from clicks alone; the first click is the point deepest inside the polyp;
- `box`: from the frame's box (the paper's prompt), then correction clicks beside it.

Reported per dataset: mean Dice and IoU after each number of clicks, and NoC@85 / NoC@90, the
clicks needed to reach IoU 0.85 / 0.90 (capped at `clicks`; from the box the correction clicks after
it, 0 where the box alone reaches it), with the frames that never reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.data.clicks import CLICK_STARTS, evaluation_click
from polyp_sam_hf.data.prompts import PROMPT_MODE_REGISTRY, get_prompt_mode
from polyp_sam_hf.evaluation.metrics import score_logits
from polyp_sam_hf.models.segmenter import ImageEmbedding, PolypSegmenter, union_mask

CURVE_AT = (1, 2, 3, 5, 10)  # click counts a table shows
NOC_THRESHOLDS = (0.85, 0.90)  # IoU a frame must reach


@dataclass
class ClickSession:
    """One frame's session from one start: Dice and IoU before any correction (`box` only) and after
    each click, the clicks given, and the clicks each IoU threshold took.

    Attributes:
        start: a `CLICK_STARTS` name.
        dice, iou: index k holds the score after k clicks (k = 0: the box alone; NaN from clicks alone).
        clicks: `(x, y, label)` in the frame's pixels, in order.
    """

    start: str
    dice: list[float]
    iou: list[float]
    clicks: list[tuple[float, float, int]]

    def noc(self, threshold: float) -> tuple[int, bool]:
        """(clicks to reach IoU `threshold`, capped at the session's length; whether it was reached)."""
        first = 0 if CLICK_STARTS[self.start].box else 1
        for k in range(first, len(self.iou)):
            if self.iou[k] >= threshold:
                return k, True
        return len(self.iou) - 1, False


def click_session(segmenter: PolypSegmenter, embedded: ImageEmbedding, target: np.ndarray, start: str,
                  clicks: int, box: np.ndarray | list | None = None, protocol: str = "paper") -> ClickSession:
    """Run the evaluation clicker `clicks` times on one frame (a frame with no polyp is not clicked on).

    Args:
        target: (H, W) bool ground truth.
        start: a `CLICK_STARTS` name: clicks alone, or the `box` given, then correction clicks.
        box: `[x0, y0, x1, y1]` in the frame's pixels, for a start with a box.
    """
    height, width = target.shape
    boxes = np.asarray(box, np.float32).reshape(1, 4) if CLICK_STARTS[start].box else None
    points: list[tuple[float, float]] = []
    labels: list[int] = []
    session = ClickSession(start, [], [], [])
    previous = None
    if boxes is not None:  # round 0: the box alone, with the model's own mask prompt
        previous = segmenter.low_res_logits(embedded, boxes)
    pred = union_mask(segmenter.to_frame(previous, embedded), height, width) if previous is not None \
        else np.zeros((height, width), bool)
    score = score_logits(segmenter.to_frame(previous, embedded), target, protocol) if previous is not None \
        else (float("nan"), float("nan"))
    session.dice.append(score[0])
    session.iou.append(score[1])
    for _ in range(clicks):
        click = evaluation_click(pred, target)
        if click is not None:  # the mask is right: later clicks change nothing
            points.append((click.x, click.y))
            labels.append(click.label)
            session.clicks.append((click.x, click.y, click.label))
            previous = segmenter.low_res_logits(embedded, boxes, np.asarray([points], np.float32),
                                                np.asarray([labels]), previous=previous)
            logits = segmenter.to_frame(previous, embedded)
            pred = union_mask(logits, height, width)
            score = score_logits(logits, target, protocol)
        session.dice.append(score[0])
        session.iou.append(score[1])
    return session


def check_clicks_possible(segmenter: PolypSegmenter, train_config: dict | None, clicks: int) -> None:
    """A prompt-free model is not corrected by clicks: refuse before any frame is embedded.

    Raises:
        ConfigError: `clicks` negative, or the model's run trained it with no prompt at all.
    """
    if clicks < 0:
        raise ConfigError(f"--clicks {clicks}: give a number of clicks (20 is the usual cap), or 0 for none.")
    mode = (train_config or {}).get("prompt_mode")
    if clicks and mode is not None and get_prompt_mode(mode).boxes is None:
        raise ConfigError(f"--clicks {clicks}: the model was trained with --prompt_mode {mode}, to find polyps with "
                          "no prompt at all; clicks correct a prompted model. Evaluate it with --prompt_mode "
                          f"{mode} instead.")


def summarise_clicks(sessions: list[tuple[str, ClickSession]], clicks: int) -> dict:
    """Per start, per source (and `all`): mean Dice and IoU after each click count (k = 0.. `clicks`),
    and NoC@85 / NoC@90 with the frames that never reach them.

    Args:
        sessions: (source, session) of every frame with a polyp, every start.
    """
    out: dict = {}
    for start in dict.fromkeys(s.start for _, s in sessions):
        groups: dict[str, list[ClickSession]] = {}
        for source, session in sessions:
            if session.start == start:
                groups.setdefault(source, []).append(session)
                groups.setdefault("all", []).append(session)
        out[start] = {}
        for source, items in groups.items():
            entry = {"n": len(items), "dice": _curve([s.dice for s in items]), "iou": _curve([s.iou for s in items])}
            for threshold in NOC_THRESHOLDS:
                counts = [s.noc(threshold) for s in items]
                tag = f"{round(100 * threshold)}"
                entry[f"noc{tag}"] = float(np.mean([k for k, _ in counts]))
                entry[f"never{tag}"] = sum(not reached for _, reached in counts)
            out[start][source] = entry
    return out


def _curve(values: list[list[float]]) -> list[float | None]:
    """The mean of each click count over frames; None where no frame has a score (before the first click)."""
    scores = np.asarray(values, dtype=np.float64)
    return [None if np.isnan(column).all() else round(float(np.nanmean(column)), 6) for column in scores.T]


def clicks_markdown(summary: dict, sources: list[str], display: dict[str, str]) -> str:
    """The clicks table of results.md: Dice after 1, 2, 3, 5, 10 clicks, NoC@85 and NoC@90."""
    if not summary:
        return ""
    first = next(iter(next(iter(summary.values())).values()))
    counts = [k for k in CURVE_AT if k < len(first["dice"])]
    header = ["Start", "Dataset", "frames", *(f"Dice @{k}" for k in counts), "NoC@85 (never)", "NoC@90 (never)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for start, per in summary.items():
        label = CLICK_STARTS[start].label
        for source in [*[s for s in sources if s in per], "all"]:
            entry = per[source]
            cells = [f"{entry['dice'][k]:.3f}" for k in counts]
            lines.append("| " + " | ".join([label, display.get(source, source), str(entry["n"]), *cells,
                                            f"{entry['noc85']:.2f} ({entry['never85']})",
                                            f"{entry['noc90']:.2f} ({entry['never90']})"]) + " |")
    return "\n".join(lines)


def session_rows(session: ClickSession) -> list[tuple[int, float, float]]:
    """(clicks, Dice, IoU) at the counts a table shows, for the per-image table."""
    return [(k, session.dice[k], session.iou[k]) for k in CURVE_AT if k < len(session.iou)]


@torch.no_grad()
def frame_sessions(segmenter: PolypSegmenter, embedded: ImageEmbedding, row: dict, target: np.ndarray, clicks: int,
                   protocol: str = "paper") -> list[ClickSession]:
    """Both starts' sessions on one frame (none for a frame without a polyp)."""
    if not target.any():
        return []
    box = next(m for m in PROMPT_MODE_REGISTRY.values() if m.paper).boxes(row)  # the paper's one box
    return [click_session(segmenter, embedded, target, start.name, clicks, box[0] if box else None, protocol)
            for start in CLICK_STARTS.values() if box or not start.box]
