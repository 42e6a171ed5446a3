"""This library's runs beside the paper's tables: one writer for `results.md`, the model card,
`polyp-sam compare` and the reproduction's `comparison.md`.

A run is described by its `metrics.json` (written by `polyp-sam evaluate`), whose `run` entry says
what it is (`RunIdentity`): which Polyp-SAM row it reproduces (backbone and strategy) and on which
split it was tested. A difference to the paper is printed only where both agree with a published
row: same method, same strategy, same split, the paper's protocol, the paper's single box.
"""

from __future__ import annotations

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.data.prompts import get_prompt_mode
from polyp_sam_hf.data.sources import SOURCES
from polyp_sam_hf.evaluation.clicks import clicks_markdown
from polyp_sam_hf.evaluation.published import (
    BACKBONE_METHODS,
    CITATION,
    HELD_OUT_SOURCE,
    HELD_OUT_TABLE,
    PAPER_RUNS,
    TABLE_SPLITS,
    TABLE_TITLES,
    PublishedRow,
    table_rows,
    tables_for_split,
)
from polyp_sam_hf.evaluation.record import EvaluationRecord, RunIdentity

BASELINE_NOTE = (
    "Box-only baselines use the same boxes as the model and nothing of the image: `ellipse` is the "
    "ellipse inscribed in each box, `box` the filled box. On real polyps the ellipse alone reaches a "
    "Dice near 0.85-0.9, so a box-prompted model is worth what it adds over that row."
)
BOX_NOTE = (
    "*Given a box*: the Polyp-SAM rows and this library's box-prompted rows were prompted with each "
    "test frame's true box (the paper's protocol); the other published methods, and this library's "
    "prompt-free rows, found the polyp with no box."
)


def _prompt(mode: str) -> tuple[str, str]:
    """How a prompt mode is named in a row, and whether the row was given the true box."""
    prompt = get_prompt_mode(mode)
    return prompt.label, "yes" if prompt.given_true_box else "no"


def identify(label: str, base_model: str | None, train_config: dict | None, split: str | None,
             paper_run: str | None = None) -> RunIdentity:
    """The identity of an evaluated model: declared (`paper_run`) or read from its run record.

    Raises:
        ValueError: `paper_run` is unknown, or names a run of another split than the data's.
    """
    if paper_run is not None:
        if paper_run not in PAPER_RUNS:
            raise ConfigError(f"--paper_run {paper_run!r}: the paper's runs are {', '.join(PAPER_RUNS)}.")
        run = PAPER_RUNS[paper_run]
        if split is not None and split != run.split:
            raise ConfigError(f"{paper_run} is a Table {run.table} run tested on the `{run.split}` split, but the "
                             f"data was prepared with the `{split}` split; prepare it with --split_preset {run.split}.")
        return RunIdentity(label, run.method, run.strategy, run.split, paper_run)
    strategy = (train_config or {}).get("strategy")
    return RunIdentity(label, BACKBONE_METHODS.get(base_model or ""), strategy, split)


def _fmt(pair: tuple[float, float] | None) -> list[str]:
    return ["n/a", "n/a"] if pair is None else [f"{pair[0]:.3f}", f"{pair[1]:.3f}"]


def _diff(ours: tuple[float, float] | None, paper: tuple[float, float] | None) -> list[str]:
    if ours is None or paper is None:
        return ["n/a", "n/a"]
    return [f"{ours[0] - paper[0]:+.3f}", f"{ours[1] - paper[1]:+.3f}"]


def _per_source(record: EvaluationRecord, method: str, mode: str) -> dict[str, tuple[float, float]]:
    return {s: e.pair for s, e in record.scores(method, mode).items() if s != "all"}


def matching_row(identity: RunIdentity, rows: list[PublishedRow]) -> PublishedRow | None:
    """The published row this run reproduces, among `rows`: same method, strategy and split."""
    for row in rows:
        if (row.method, row.strategy, row.split) == (identity.method, identity.strategy, identity.split):
            return row
    return None


def comparison_table(rows: list[PublishedRow], runs: list[EvaluationRecord], sources: list[str]
                     ) -> tuple[str, list[str]]:
    """One markdown table: the published rows, and per run and prompt mode its row, its difference
    to its published row (paper mode only), the box-only baselines of the same mode and its margin
    over the ellipse. Rows found without the true box come first, then the rows given it, so each
    is next to its fair comparison.

    Args:
        rows: published rows to show (their `table` is named in the Kind column).
        runs: evaluations (`metrics.json`), each with its run's identity.
        sources: the dataset columns, in order.

    Returns:
        The table, and sentences explaining every `n/a` difference.
    """
    # frames drawn by the library are never headed as if they were the dataset they are named after
    kind = " (synthetic)" if any(record.synthetic for record in runs) else ""
    header = ["Method", "Kind", "Given a box"] + [f"{SOURCES[s].display_name}{kind} {m}" for s in sources
                                                   for m in ("Dice", "mIoU")]
    blocks: list[tuple[str, list[str]]] = []  # (given a box, its lines): sorted into two groups below

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    for published in rows:
        given = "yes" if published.strategy else "no"
        blocks.append((given, [row([published.label, f"published, Table {published.table}", given]
                                   + [c for s in sources for c in _fmt(published.values.get(s))])]))
    notes = []
    for record in runs:
        identity = record.run
        protocol = record.settings.get("protocol", "paper")
        paper = matching_row(identity, rows)
        if paper is None and rows and _beside_held_out(record, rows):
            notes.append(_held_out_note(identity))
        elif paper is None and rows:  # with no published rows (the training's test report) there is nothing to explain
            notes.append(_why_no_difference(identity, rows))
        elif protocol != "paper":
            notes.append(f"`{identity.label}` was scored with the `{protocol}` protocol, the Polyp-SAM rows with "
                         "the paper's (threshold at probability 0.5): no difference is printed.")
        for mode in record.model_modes:
            ours = _per_source(record, "model", mode)
            prompt, given = _prompt(mode)
            zero_shot = ", zero-shot" if identity.strategy is None and identity.paper_run is None else ""
            block = [row([f"**{identity.label}** ({prompt}{zero_shot})", "this library", given]
                         + [c for s in sources for c in _fmt(ours.get(s))])]
            if paper is not None and protocol == "paper" and get_prompt_mode(mode).paper:
                block.append(row([f"difference to {paper.label}, Table {paper.table}", "this library - published", ""]
                                 + [c for s in sources for c in _diff(ours.get(s), paper.values.get(s))]))
            for name in (m for m in record.results if m != "model" and mode in record.results[m]):
                baseline = _per_source(record, name, mode)
                block.append(row([f"{name} from the same boxes ({prompt})", "box only", given]
                                 + [c for s in sources for c in _fmt(baseline.get(s))]))
            if mode in record.results.get("ellipse", {}):  # what the image adds over the box alone
                ellipse = _per_source(record, "ellipse", mode)
                block.append(row([f"margin over the ellipse ({prompt})", "this library - ellipse", ""]
                                 + [c for s in sources for c in _diff(ours.get(s), ellipse.get(s))]))
            blocks.append((given, block))
    # the fair comparisons side by side: every row found without the true box, then every row given it
    ordered = [line for group in ("no", "yes") for given, block in blocks if given == group for line in block]
    if runs and all(record.scored_split == "test" for record in runs):
        counts = {s: max(record.sources[s].n if s in record.sources else 0 for record in runs) for s in sources}
        ordered.append(row(["frames scored (the paper's test set)", "count", ""]
                           + [c for s in sources for c in (f"{counts[s]} ({SOURCES[s].paper_test_frames})", "")]))
        few = [f"{SOURCES[s].display_name} {counts[s]} of {SOURCES[s].paper_test_frames}" for s in sources
               if counts[s] < SOURCES[s].paper_test_frames]
        if few:
            notes.append(f"Fewer frames than the paper's test sets ({', '.join(few)}): these columns check the "
                         "pipeline; they are not numbers to set beside the published ones.")
    return "\n".join([row(header), "|" + "---|" * len(header), *ordered]), notes


def _beside_held_out(record: EvaluationRecord, rows: list[PublishedRow]) -> bool:
    """A run of another split than Table 3's, placed beside it for its CVC-ColonDB column."""
    return (all(row.table == HELD_OUT_TABLE for row in rows) and record.run.split != TABLE_SPLITS[HELD_OUT_TABLE]
            and HELD_OUT_SOURCE in _sources_of(record))


def _held_out_note(identity: RunIdentity) -> str:
    return (f"`{identity.label}` was trained on the `{identity.split or 'unknown'}` split's training frames, the "
            f"paper's Table 3 models on all of Kvasir-SEG and CVC-ClinicDB; CVC-ColonDB trained neither, so its "
            "column stands beside Table 3's rows (no difference is printed: the training frames differ).")


def _why_no_difference(identity: RunIdentity, rows: list[PublishedRow]) -> str:
    shown = sorted({row.split for row in rows})
    if identity.split not in shown:
        return (f"`{identity.label}` was tested on the `{identity.split or 'unknown'}` split, which the paper "
                f"never reported (these rows are for `{'`, `'.join(shown)}`): the published rows are for "
                "reference only and no difference is printed.")
    if identity.strategy is None and identity.paper_run is None:
        return (f"`{identity.label}` is zero-shot (not fine-tuned by this library): no Polyp-SAM row to compare "
                "with; the box-only rows beside it are scored on the same frames.")
    if identity.method is None:
        return (f"`{identity.label}` was not fine-tuned from SAM ViT-B or ViT-L (or its run records no Hub base "
                "model; pass --paper_run to `polyp-sam evaluate` to declare which paper run it reproduces): "
                "no Polyp-SAM row to compare with.")
    return (f"The paper has no {identity.method} row with strategy `{identity.strategy}` here: no difference "
            f"is printed for `{identity.label}`.")


def _other_split_note(record: EvaluationRecord) -> str:
    return (f"`{record.run.label}` was scored on the `{record.scored_split}` frames, not the test frames: the "
            "published rows, all of test frames, are not set beside it.")


def _sources_of(record: EvaluationRecord) -> set[str]:
    return set(_per_source(record, "model", record.model_modes[0]))


def _ordered(sources: set[str]) -> list[str]:
    return [s for s in SOURCES if s in sources]


def results_section(record: EvaluationRecord) -> str:
    """The comparison for one evaluation (`results.md` and the model card): the main table of the
    run's split (Table 2 plus Table 1's row for its strategy; Table 3), or Table 2 as reference."""
    identity = record.run
    if record.scored_split != "test":  # the published numbers are of test frames: nothing to set beside
        table, notes = comparison_table([], [record], _ordered(_sources_of(record)))
        return "\n\n".join([table, *notes, _other_split_note(record), BASELINE_NOTE])
    tables = tables_for_split(identity.split)
    rows = table_rows(tables[0] if tables else 2)
    for extra in tables[1:]:  # Table 1's row of the run's own strategy, where Table 2 has none like it
        rows += [r for r in table_rows(extra) if r.strategy == identity.strategy and r.method == identity.method
                 and matching_row(identity, rows) is None]
    table, notes = comparison_table(rows, [record], _ordered(_sources_of(record)))
    parts = [table, *notes]
    if HELD_OUT_TABLE not in tables and _belongs(record, HELD_OUT_TABLE):  # the held-out column beside Table 3
        held_out, held_out_notes = comparison_table(table_rows(HELD_OUT_TABLE), [record], [HELD_OUT_SOURCE])
        parts += [f"**Beside {TABLE_TITLES[HELD_OUT_TABLE]}**", held_out, *held_out_notes]
    return "\n\n".join([*parts, BOX_NOTE, BASELINE_NOTE, f"Published rows: {CITATION}."])


def detection_table(record: EvaluationRecord) -> str:
    """Polyps found (recall) and false alarms per frame, per prompt mode and source, at the headline
    jitter level: `metrics.detection_counts` (a polyp is found by a predicted component with IoU
    >= 0.5)."""
    level = str(record.primary_jitter)
    results = record.results
    sources = [s for s in SOURCES if any(s in results["model"][m].get(level, {}) for m in results["model"])] + ["all"]
    header = ["Method", "Given a box"] + [SOURCES[s].display_name if s != "all" else "all" for s in sources]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, modes in results.items():
        for mode, levels in modes.items():
            per = levels.get(level) or levels.get("0.0", {})  # modes without a box are scored unjittered only
            cells = []
            for s in sources:
                e = per.get(s)
                cells.append("n/a" if e is None else
                             f"{'n/a' if e.recall is None else format(e.recall, '.3f')} / {e.fp_per_frame:.2f}")
            name = f"**{record.run.label}**" if method == "model" else f"{method} from the same boxes"
            prompt, given = _prompt(mode)
            lines.append("| " + " | ".join([f"{name} ({prompt})", given] + cells) + " |")
    notes = []
    for mode in (m for m in results["model"] if get_prompt_mode(m).self_prompted):
        made = record.scores("model", mode, 0.0).get("all")
        if made is not None:
            notes += ["", f"Self-prompted (`{mode}`): on {made.nothing_found} frames the prompt-free pass found "
                          "nothing, so no box was made and the prediction is empty (counted in the numbers above)."]
    return "\n".join(["Detection: polyps found (recall) / false-positive components per frame. A polyp is found by a "
                      "predicted 8-connected component whose IoU with it is at least 0.5.", "", *lines, *notes])


def results_markdown(record: EvaluationRecord) -> str:
    """`results.md` of `polyp-sam evaluate`."""
    identity = record.run
    settings = record.settings
    level = record.primary_jitter
    counts = ", ".join(f"{SOURCES[s].display_name} {e.n}" for s, e in record.sources.items())
    empty = record.empty_mask_frames
    empty_note = ([f"**{len(empty)} test frames have an empty mask and are in no mean**: "
                   f"{', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''}. {record.empty_mask_policy}", ""]
                  if empty else [])
    mask_prompt = settings.get("mask_prompt") or "none"
    prompted = ("" if mask_prompt == "none" else
                f" The model was also given each box as a mask prompt (`{mask_prompt}`: the ellipse inscribed in the "
                "box); the baselines are the same boxes alone.")
    return "\n".join([
        f"# Results: {identity.label}",
        "",
        f"Protocol `{settings['protocol']}`, split `{identity.split or 'unknown'}`"
        f"{'' if record.scored_split == 'test' else f' (its `{record.scored_split}` frames)'}, box jitter {level}. "
        f"Frames: {counts}.{prompted}",
        "",
        *empty_note,
        results_section(record),
        "",
        detection_table(record),
        "",
        *([clicks_section(record), ""] if record.clicks else []),
    ])


def clicks_section(record: EvaluationRecord) -> str:
    """How many clicks a polyp needs (`evaluate --clicks`): the evaluation clicker's table."""
    display = {name: source.display_name for name, source in SOURCES.items()}
    sources = [s for s in SOURCES if any(s in per for per in record.clicks.values())]
    clicks = record.settings.get("clicks")
    return "\n".join([
        f"## Clicks ({clicks} at most)", "",
        "Each click is at the point deepest inside the largest error of the current mask, positive on missed polyp, "
        "negative on false polyp; the clicks so far and the previous prediction prompt the model again. NoC@85 / "
        "NoC@90: the clicks needed to reach IoU 0.85 / 0.90 (from the box, the corrections after it; capped at "
        f"{clicks}), with the frames that never reach it.", "",
        clicks_markdown(record.clicks, sources, display)])


def comparison_markdown(runs: list[EvaluationRecord], tables: tuple[int, ...] | None = None) -> str:
    """Every published cell beside the runs that reproduce it, one section per paper table.

    A run appears in a table of its own split; a declared paper run only in its own table. Runs
    that fit no table are listed at the end with the reason.
    """
    tables = tables or tuple(TABLE_SPLITS)
    sections = ["# This library's runs beside Li, Hu, Yang 2023", ""]
    placed: set[int] = set()
    for table in tables:
        members = [m for m in runs if _belongs(m, table)]
        placed |= {id(m) for m in members}
        rows = table_rows(table)
        sources = _ordered({s for r in rows for s in r.values}
                           | {s for m in members if TABLE_SPLITS[table] == m.run.split for s in _sources_of(m)})
        text, notes = comparison_table(rows, members, sources)
        sections += [f"## {TABLE_TITLES[table]}", "", text, ""]
        if not members:
            sections += ["No run of this library was given for this table.", ""]
        sections += [note + "\n" for note in notes]
    unplaced = [m for m in runs if id(m) not in placed]
    if unplaced:
        sections += ["## Runs that match no table shown", ""]
        sections += [f"- `{m.run.label}`: split `{m.run.split or 'unknown'}`, "
                     f"{m.run.method or 'no Polyp-SAM backbone'}, strategy `{m.run.strategy or 'unknown'}`"
                     + ("" if m.scored_split == "test" else f", scored on its `{m.scored_split}` frames")
                     for m in unplaced] + [""]
    sections += [BOX_NOTE, "", BASELINE_NOTE, "", f"Published rows: {CITATION}.", ""]
    return "\n".join(sections)


def _belongs(record: EvaluationRecord, table: int) -> bool:
    """A run belongs to a table of its split (a declared paper run: its own table only); and a run of any
    known split scored on CVC-ColonDB also stands beside Table 3 (`published.HELD_OUT_TABLE`)."""
    identity = record.run
    if record.scored_split != "test":
        return False
    if identity.paper_run is not None:
        return PAPER_RUNS[identity.paper_run].table == table
    if identity.split == TABLE_SPLITS[table]:
        return True
    return table == HELD_OUT_TABLE and identity.split is not None and HELD_OUT_SOURCE in _sources_of(record)
