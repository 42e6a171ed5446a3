"""Build the polyp `datasets.DatasetDict` from a data root: read, validate, prompt, split, save.

Schema of every row (see `FEATURES`):

| column | type | meaning |
|---|---|---|
| `image` | `Image()` | RGB frame |
| `mask` | `Image()` | single channel, 0/255 only |
| `source` | string | a `SOURCES` key |
| `image_id` | string | file stem, unique within a source |
| `height`, `width` | int32 | original size |
| `box` | 4 x float32 or null | `[x_min, y_min, x_max, y_max]`, inclusive, original pixels; null for an empty mask |
| `box_origin` | string | `mask`, `kavsir_bboxes.json` or `none` |
| `boxes` | list of 4 x float32 | one box per 8-connected component, largest first |
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from datasets.arrow_writer import ArrowWriter
from PIL import Image
from tqdm.auto import tqdm

from polyp_sam_hf.data.layouts import Discovery, PairRecord, Skipped, discover
from polyp_sam_hf.data.prompts import MIN_POLYP_AREA, box_iou, polyp_prompts
from polyp_sam_hf.data.reading import DataError, encode_png, read_pair
from polyp_sam_hf.data.sources import frame_key
from polyp_sam_hf.data.splits import SplitSettings, assign_splits, get_split_preset
from polyp_sam_hf.data.synthetic import SYNTHETIC_DESCRIPTION, SYNTHETIC_MARKER

logger = logging.getLogger(__name__)

BOX = datasets.List(datasets.Value("float32"), length=4)
FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "mask": datasets.Image(),
        "source": datasets.Value("string"),
        "image_id": datasets.Value("string"),
        "height": datasets.Value("int32"),
        "width": datasets.Value("int32"),
        "box": BOX,
        "box_origin": datasets.Value("string"),
        "boxes": datasets.List(BOX),
    }
)
SPLITS = ("train", "validation", "test")
KVASIR_ORIGIN = "kavsir_bboxes.json"
# A Kvasir json box is the prompt only if it overlaps the mask's own extent at least this much
# (IoU); the release's boxes and the mask extents agree far closer than that, so a box below it is
# a wrong entry (another frame's box, swapped coordinates), not annotation noise.
MIN_JSON_BOX_IOU = 0.5


@dataclass
class PrepareReport:
    """What `prepare_dataset` built and what it left out."""

    layout: str
    counts: Counter = field(default_factory=Counter)  # (split, source) -> rows
    skipped: list[Skipped] = field(default_factory=list)
    empty_dropped: dict = field(default_factory=dict)  # (split, source) -> image ids with an empty mask, left out
    empty_kept: dict = field(default_factory=dict)  # source -> test image ids with an empty mask, kept
    left_out_by_preset: int = 0
    omitted: list[str] = field(default_factory=list)  # splits with no rows, not in the DatasetDict
    specks: dict[str, int] = field(default_factory=dict)  # "source/image_id" -> components under the minimum
    rejected_json_boxes: dict[str, str] = field(default_factory=dict)  # "source/image_id" -> why

    def format(self, full: bool = False) -> str:
        """The summary table printed at the end of `polyp-sam prepare`: the first few frames of each
        kind named, or with `full` all of them (the copy saved as `prepare_report.txt`)."""
        sources = sorted({source for _, source in self.counts})
        lines = [f"Layout: {self.layout}", ""]
        header = f"{'split':<11}" + "".join(f"{s:>14}" for s in sources) + f"{'total':>9}"
        lines += [header, "-" * len(header)]
        for split in SPLITS:
            row = [self.counts[(split, s)] for s in sources]
            lines.append(f"{split:<11}" + "".join(f"{n:>14}" for n in row) + f"{sum(row):>9}")
        lines.append("")
        for (split, source), ids in sorted(self.empty_dropped.items()):
            lines.append(f"Dropped {len(ids)} {source} {split} rows with an empty mask: {_named(ids, full)}")
        for source, ids in sorted(self.empty_kept.items()):
            lines.append(f"Kept {len(ids)} {source} test rows with an empty mask (box is null; evaluate leaves "
                         f"them out of every mean and lists them): {_named(ids, full)}")
        if self.specks:
            named = _named([f"{k} ({n})" for k, n in self.specks.items()], full)
            lines.append(f"Ignored {sum(self.specks.values())} specks smaller than the minimum polyp area in "
                         f"{len(self.specks)} masks (box and boxes leave them out): {named}")
        if self.rejected_json_boxes:
            lines.append(f"Used the mask's extent instead of {KVASIR_ORIGIN} for {len(self.rejected_json_boxes)} frames "
                         f"whose json box overlaps it by IoU < {MIN_JSON_BOX_IOU}: "
                         + _named([f"{k} ({why})" for k, why in self.rejected_json_boxes.items()], full))
        for split in self.omitted:
            lines.append(f"Split {split!r} has no rows and is not in the saved dataset.")
        if self.left_out_by_preset:
            lines.append(f"Left out {self.left_out_by_preset} pairs not used by the split preset.")
        kept_apart = [s for s in self.skipped if s.release_file]
        for kind in sorted({s.release_file for s in kept_apart}):
            names = [Path(s.path).name for s in kept_apart if s.release_file == kind]
            lines.append(f"Left out {len(names)} files the release ships beside the frames ({kind}): {_named(names, full)}")
        skipped = [s for s in self.skipped if not s.release_file]
        lines.append(f"Skipped files: {len(skipped)}")
        lines += [f"  {s.path}: {s.reason}" for s in skipped]
        return "\n".join(lines)


def _named(ids: list[str], full: bool, first: int = 5) -> str:
    shown = ids if full else ids[:first]
    return ", ".join(shown) + ("" if len(shown) == len(ids) else f" ... ({len(ids) - first} more in prepare_report.txt)")


def _image_bytes(path: Path, image: Image.Image) -> dict:
    """Keep an RGB PNG/JPEG file's own bytes (no re-encoding loss); re-encode anything else."""
    with Image.open(path) as raw:
        keep = raw.mode == "RGB" and raw.format in ("PNG", "JPEG")
    if keep:
        return {"bytes": path.read_bytes(), "path": None}
    return {"bytes": encode_png(image), "path": None}


def _scaled_json_box(json_box, width: int, height: int) -> list[float]:
    """A `kavsir_bboxes.json` box moved into this file's pixel frame (PraNet resizes some)."""
    (x0, y0, x1, y1), (json_w, json_h) = json_box
    sx, sy = width / json_w, height / json_h
    return [
        float(np.clip(x0 * sx, 0, width - 1)),
        float(np.clip(y0 * sy, 0, height - 1)),
        float(np.clip(x1 * sx, 0, width - 1)),
        float(np.clip(y1 * sy, 0, height - 1)),
    ]


def build_row(pair: PairRecord, min_polyp_area: int = MIN_POLYP_AREA) -> dict:
    """Read one pair and make its dataset row (see the module docstring for the schema).

    Raises:
        DataError: a file is unreadable, or image and mask sizes differ.
    """
    image, mask = read_pair(pair.image_path, pair.mask_path)
    mask_box, boxes, specks = polyp_prompts(mask, min_polyp_area)
    box, origin, rejected = mask_box, "mask" if mask_box is not None else "none", None
    if pair.json_box is not None and mask_box is not None:
        json_box = _scaled_json_box(pair.json_box, image.width, image.height)
        overlap = box_iou(json_box, mask_box)
        if overlap >= MIN_JSON_BOX_IOU:
            box, origin = json_box, KVASIR_ORIGIN
        else:  # the mask's own extent is the prompt; the report names the frame
            rejected = f"{KVASIR_ORIGIN} box {[round(v) for v in json_box]} has IoU {overlap:.2f} with the mask's extent " \
                       f"{[round(v) for v in mask_box]}"
    return {
        "image": _image_bytes(pair.image_path, image),
        "mask": {"bytes": encode_png(mask), "path": None},
        "source": pair.source,
        "image_id": pair.image_id,
        "height": image.height,
        "width": image.width,
        "box": box,
        "box_origin": origin,
        "boxes": boxes,
        "specks": specks,  # not a column: counted in the report
        "rejected_json_box": rejected,  # not a column: named in the report
    }


def prepare_dataset(
    data_root: str | Path,
    split_preset: str = SplitSettings.preset,
    val_fraction: float = SplitSettings.val_fraction,
    seed: int = SplitSettings.seed,
    min_polyp_area: int = MIN_POLYP_AREA,
    skip_bad_files: bool = False,
    work_dir: str | Path | None = None,
) -> tuple[datasets.DatasetDict, PrepareReport]:
    """Read a data root into a `DatasetDict` with `train`, `validation` and `test` splits.

    Args:
        data_root: a folder in the PraNet layout or holding original releases.
        split_preset: a `SPLIT_PRESETS` key (`paper`, `cross-colondb`).
        val_fraction: the part of each training source held out for validation.
        seed: seeds the release split and the validation draw.
        min_polyp_area: smallest polyp, in pixels: smaller specks are in neither `box` nor `boxes`.
        skip_bad_files: list unreadable or mismatched pairs as skipped instead of stopping.
        work_dir: write each split's rows to an Arrow file here as they are read, so memory stays
            flat however many frames there are (the returned splits are memory-mapped from it; keep
            the folder until they are saved). None: the rows are held in memory.

    Raises:
        DataError: no dataset at `data_root`, or a bad file while `skip_bad_files` is False.
    """
    preset = get_split_preset(split_preset)
    found: Discovery = discover(data_root)
    synthetic = (Path(data_root) / SYNTHETIC_MARKER).is_file()  # drawn frames: no video sequences
    unpaired = [s for s in found.skipped if s.unpaired]
    if unpaired and not skip_bad_files:
        named = "; ".join(f"{s.path}: {s.reason}" for s in unpaired[:3])
        raise DataError(f"{len(unpaired)} files have no partner: {named}{' ...' if len(unpaired) > 3 else ''}. "
                        f"Add the missing files, or pass --skip_bad_files to leave them out and list them.")
    report = PrepareReport(layout=found.layout, skipped=list(found.skipped))
    splits, report.left_out_by_preset = assign_splits(found.pairs, preset, val_fraction, seed, sequences=not synthetic)

    built: dict[str, datasets.Dataset | None] = {}
    total = sum(len(pairs) for pairs in splits.values())
    with tqdm(total=total, desc="Reading pairs", unit="img") as bar:
        for split, pairs in splits.items():
            rows = _SplitRows(split, work_dir, synthetic)
            for pair in pairs:
                bar.update(1)
                try:
                    row = build_row(pair, min_polyp_area)
                except DataError as err:
                    if not skip_bad_files:
                        raise DataError(f"{err} Fix or remove the file, or pass --skip_bad_files to leave such "
                                        "pairs out and list them.") from None
                    report.skipped.append(Skipped(str(pair.image_path), str(err)))
                    continue
                if row["rejected_json_box"]:
                    report.rejected_json_boxes[frame_key(pair.source, pair.image_id)] = row["rejected_json_box"]
                if row["specks"]:
                    report.specks[frame_key(pair.source, pair.image_id)] = row["specks"]
                if row["box"] is None:
                    if split != "test":
                        report.empty_dropped.setdefault((split, pair.source), []).append(pair.image_id)
                        continue
                    report.empty_kept.setdefault(pair.source, []).append(pair.image_id)
                rows.add(row)
                report.counts[(split, pair.source)] += 1
            built[split] = rows.finish()
    # an empty split is left out: `save_to_disk` writes it without shards and cannot read it back
    dataset = datasets.DatasetDict({split: rows for split, rows in built.items() if rows is not None})
    report.omitted = [split for split, rows in built.items() if rows is None]
    return dataset, report


class _SplitRows:
    """One split's rows as they are read: in a list, or streamed to `work_dir/<split>.arrow`."""

    def __init__(self, split: str, work_dir: str | Path | None, synthetic: bool) -> None:
        self.info = datasets.DatasetInfo(description=SYNTHETIC_DESCRIPTION if synthetic else "", features=FEATURES)
        self.rows: list[dict] = []
        self.count = 0
        self.writer = None
        if work_dir is not None:
            Path(work_dir).mkdir(parents=True, exist_ok=True)
            self.path = Path(work_dir) / f"{split}.arrow"
            self.writer = ArrowWriter(features=FEATURES, path=str(self.path), writer_batch_size=64)

    def add(self, row: dict) -> None:
        self.count += 1
        own = {name: row[name] for name in FEATURES}
        if self.writer is None:
            self.rows.append(own)
        else:
            self.writer.write(FEATURES.encode_example(own))

    def finish(self) -> datasets.Dataset | None:
        if self.writer is not None:
            self.writer.finalize()
            return datasets.Dataset.from_file(str(self.path), info=self.info) if self.count else None
        if not self.rows:
            return None
        columns = {name: [row[name] for row in self.rows] for name in FEATURES}
        return datasets.Dataset.from_dict(columns, features=FEATURES, info=self.info)
