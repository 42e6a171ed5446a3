"""Finding image/mask pairs in a user's data root, in the folder layouts the datasets ship in.

Two layouts, a registry entry each:
- `pranet`: `TrainDataset/{images,masks}` and `TestDataset/<Dataset>/{images,masks}`, the layout
  PraNet published and most polyp papers since (Polyp-PVT, HSNet, Polyp-SAM) use;
- `release`: the datasets' own releases side by side, e.g. `Kvasir-SEG/{images,masks}` with
  `kavsir_bboxes.json`, `CVC-ClinicDB/{Original,Ground Truth}` (TIFF) or its PNG re-release.

Images and masks are paired by file stem, never by sorted order; where a release names a frame's
mask otherwise (CVC-ColonDB's `N.tiff` / `pN.tiff`, ETIS-LaribPolypDB's `N.tif` / `Ground Truth/pN.tif`:
`sources.ReleaseNaming`), by the frame's number, and the other files it ships (contours) are left
out and listed as such.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from polyp_sam_hf.core.registry import by_name
from polyp_sam_hf.data.reading import IMAGE_EXTENSIONS, DataError
from polyp_sam_hf.data.sources import (
    SOURCES,
    ReleaseNaming,
    source_for_pranet_test_dir,
    source_for_release_dir,
    source_from_pranet_train_name,
)

KVASIR_BBOX_FILE = "kavsir_bboxes.json"  # sic: the Kvasir-SEG release spells it so

# (image folder, mask folder) pairs a dataset folder may hold, relative to it.
PAIR_FOLDERS = (
    ("images", "masks"),
    ("Original", "Ground Truth"),
    ("PNG/Original", "PNG/Ground Truth"),
    ("TIF/Original", "TIF/Ground Truth"),
)


@dataclass
class PairRecord:
    """One image and its mask, found on disk.

    Attributes:
        source: a `SOURCES` key.
        image_id: the file stem, unique within the source.
        image_path, mask_path: the two files.
        group: `train` (the layout marks it for training), `test`, or `any` (an original
            release, which the split preset divides).
        json_box: for Kvasir, the box from `kavsir_bboxes.json` in that file's pixel frame,
            with the frame size: `([x0, y0, x1, y1], (width, height))`.
    """

    source: str
    image_id: str
    image_path: Path
    mask_path: Path
    group: str
    json_box: tuple[list[float], tuple[int, int]] | None = None


@dataclass
class Skipped:
    """A file left out, with the reason, for the summary table."""

    path: str
    reason: str
    unpaired: bool = False  # an image without its mask or a mask without its image: a bad file
    release_file: str | None = None  # a file the release ships beside frames and masks (a contour): what it is


@dataclass
class Discovery:
    """What a layout found: the pairs, and everything it left out."""

    layout: str
    pairs: list[PairRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _image_files(folder: Path, skipped: list[Skipped]) -> dict[str, Path]:
    """Map stem -> image file in `folder`; non-image files are reported, duplicates are errors."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(Skipped(str(path), "not an image file"))
            continue
        if path.stem in found:
            raise DataError(
                f"Duplicate image id {path.stem!r}: {found[path.stem]} and {path}. "
                "Keep one file per id in the folder."
            )
        found[path.stem] = path
    return found


def pair_folder(
    image_dir: Path, mask_dir: Path, skipped: list[Skipped]
) -> list[tuple[str, Path, Path]]:
    """Pair the files of an image folder and a mask folder by stem.

    Returns:
        `(stem, image_path, mask_path)` sorted by stem. Unpaired files are appended to `skipped`.
    """
    images = _image_files(image_dir, skipped)
    masks = _image_files(mask_dir, skipped)
    for stem in sorted(images.keys() - masks.keys()):
        skipped.append(Skipped(str(images[stem]), f"image without a mask in {mask_dir}", unpaired=True))
    for stem in sorted(masks.keys() - images.keys()):
        skipped.append(Skipped(str(masks[stem]), f"mask without an image in {image_dir}", unpaired=True))
    return [(stem, images[stem], masks[stem]) for stem in sorted(images.keys() & masks.keys())]


def _find_pair_folders(dataset_dir: Path) -> tuple[Path, Path] | None:
    for image_sub, mask_sub in PAIR_FOLDERS:
        if (dataset_dir / image_sub).is_dir() and (dataset_dir / mask_sub).is_dir():
            return dataset_dir / image_sub, dataset_dir / mask_sub
    return None


def _named_files(release_dir: Path, naming: ReleaseNaming
                 ) -> tuple[dict[str, Path], dict[str, Path], list[Path]] | None:
    """A release's frames `{N: path}`, masks `{N: path}` and other files of its own naming, or None where
    its folders hold no frame with its mask under that naming (another copy of the dataset)."""
    image_dir, mask_dir = release_dir / naming.images, release_dir / naming.masks
    if not (image_dir.is_dir() and mask_dir.is_dir()):
        return None
    files = {p for folder in {image_dir, mask_dir} for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS}
    others = [p for p in files if any(p.stem.startswith(prefix) for prefix, _ in naming.other_files)]
    frames = {p.stem: p for p in files if p.parent == image_dir and p.stem.isdigit()}
    masks = {p.stem[len(naming.mask_prefix):]: p for p in files if p.parent == mask_dir and p not in others
             and p.stem.startswith(naming.mask_prefix) and p.stem[len(naming.mask_prefix):].isdigit()}
    return (frames, masks, others) if frames.keys() & masks.keys() else None


def pair_by_number(release_dir: Path, naming: ReleaseNaming, skipped: list[Skipped]) -> list[tuple[str, Path, Path]]:
    """Pair a release's frame `N` with its mask `{mask_prefix}N` (`sources.ReleaseNaming`).

    Returns:
        `(N, frame, mask)` in frame-number order. Other files of the release's naming (contours) are
        listed in `skipped` as what they are; frames without a mask and masks without a frame as
        unpaired; anything else as not of this release.
    """
    frames, masks, others = _named_files(release_dir, naming) or ({}, {}, [])
    kinds = dict(naming.other_files)
    for path in sorted(others):
        prefix = next(p for p in kinds if path.stem.startswith(p))
        skipped.append(Skipped(str(path), f"left out: {kinds[prefix]} ({prefix}N)", release_file=kinds[prefix]))
    paired = set(frames) & set(masks)
    for number in sorted(set(frames) - paired, key=int):
        skipped.append(Skipped(str(frames[number]), f"frame without its mask {naming.mask_prefix}{number}",
                               unpaired=True))
    for number in sorted(set(masks) - paired, key=int):
        skipped.append(Skipped(str(masks[number]), f"mask without its frame {number}", unpaired=True))
    known = {*frames.values(), *masks.values(), *others}
    for folder in {release_dir / naming.images, release_dir / naming.masks}:
        for path in sorted(p for p in folder.iterdir()
                           if p.is_file() and not p.name.startswith(".") and p not in known):
            skipped.append(Skipped(str(path), "not a frame or mask of the release's naming"))
    return [(number, frames[number], masks[number]) for number in sorted(paired, key=int)]


def _release_pairs(source: str, path: Path, skipped: list[Skipped]) -> list[tuple[str, Path, Path]] | None:
    """A release folder's pairs: by its own naming where the source has one and the folder follows it,
    else by file stem in one of `PAIR_FOLDERS`; None where neither is found."""
    naming = SOURCES[source].release_naming
    if naming is not None and _named_files(path, naming) is not None:
        return pair_by_number(path, naming, skipped)
    folders = _find_pair_folders(path)
    return pair_folder(*folders, skipped) if folders is not None else None


def read_kvasir_boxes(path: Path) -> dict[str, tuple[list[float], tuple[int, int]]]:
    """Read `kavsir_bboxes.json`: image id -> (union of its boxes, (width, height)).

    The file is a JSON object keyed by image id; each value holds `height`, `width` and a list
    `bbox` of `{label, xmin, ymin, xmax, ymax}`. An image's several boxes are merged into the box
    that holds them all, the whole-polyp prompt the paper uses.

    Raises:
        DataError: the file is not such an object, or an entry has a missing or non-numeric field,
            a size that is not positive, or a box whose max is below its min (file and entry named).
    """
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"Cannot read {path}: {err}. Restore the file from the release.") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path} holds a JSON {type(raw).__name__}; the release's file is an object keyed by image "
                        "id. Restore it from the release, or remove it to use boxes from the masks.")
    boxes = {}
    for image_id, entry in raw.items():
        try:
            items = entry["bbox"]
            if not items:
                continue
            width, height = int(entry["width"]), int(entry["height"])
            box = [float(min(b["xmin"] for b in items)), float(min(b["ymin"] for b in items)),
                   float(max(b["xmax"] for b in items)), float(max(b["ymax"] for b in items))]
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{path}: entry {image_id!r} is malformed ({type(err).__name__}: {err}); expected height, width "
                "and a list 'bbox' of {label, xmin, ymin, xmax, ymax} numbers."
            ) from None
        if width <= 0 or height <= 0:
            raise DataError(f"{path}: entry {image_id!r} has size {width}x{height}; width and height must be positive.")
        if box[2] < box[0] or box[3] < box[1]:
            raise DataError(f"{path}: entry {image_id!r} has an inverted box {box} (xmax < xmin or ymax < ymin); "
                            "fix or remove the entry.")
        boxes[image_id] = (box, (width, height))
    return boxes


def _attach_kvasir_boxes(pairs: list[PairRecord], json_path: Path, skipped: list[Skipped]) -> None:
    """Give each Kvasir pair its json box; an entry naming no frame on disk is reported."""
    if not json_path.is_file():
        return
    boxes = read_kvasir_boxes(json_path)
    ids = {pair.image_id for pair in pairs if pair.source == "kvasir"}
    for pair in pairs:
        if pair.source == "kvasir" and pair.image_id in boxes:
            pair.json_box = boxes[pair.image_id]
    orphans = sorted(set(boxes) - ids)
    if orphans:
        named = ", ".join(orphans[:3]) + (f" and {len(orphans) - 3} more" if len(orphans) > 3 else "")
        skipped.append(Skipped(str(json_path), f"{len(orphans)} entries name no Kvasir-SEG frame found here: {named}"))


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------


def _matches_pranet(root: Path) -> bool:
    return (root / "TrainDataset").is_dir() or (root / "TestDataset").is_dir()


def _discover_pranet(root: Path) -> Discovery:
    found = Discovery("pranet")
    train_dir = root / "TrainDataset"
    if train_dir.is_dir():
        folders = _find_pair_folders(train_dir)
        if folders is None:
            found.skipped.append(Skipped(str(train_dir), "no images/ and masks/ folders in it"))
        else:
            for stem, image, mask in pair_folder(*folders, found.skipped):
                source = source_from_pranet_train_name(stem)
                if source is None:
                    found.skipped.append(
                        Skipped(
                            str(image),
                            "cannot tell its source: TrainDataset names are 25-character "
                            "Kvasir ids or CVC-ClinicDB frame numbers",
                        )
                    )
                    continue
                found.pairs.append(PairRecord(source, stem, image, mask, "train"))
    test_dir = root / "TestDataset"
    if test_dir.is_dir():
        for sub in sorted(p for p in test_dir.iterdir() if p.is_dir()):
            source = source_for_pranet_test_dir(sub.name)
            folders = _find_pair_folders(sub)
            if source is None:
                known = ", ".join(s.pranet_test_dir for s in SOURCES.values())
                found.skipped.append(Skipped(str(sub), f"unknown dataset folder (known: {known})"))
                continue
            if folders is None:
                found.skipped.append(Skipped(str(sub), "no images/ and masks/ folders in it"))
                continue
            for stem, image, mask in pair_folder(*folders, found.skipped):
                found.pairs.append(PairRecord(source, stem, image, mask, "test"))
    for candidate in (root / KVASIR_BBOX_FILE, root / "Kvasir-SEG" / KVASIR_BBOX_FILE):
        _attach_kvasir_boxes(found.pairs, candidate, found.skipped)
    return found


def _holds_pairs(source: str, path: Path) -> bool:
    naming = SOURCES[source].release_naming
    return _find_pair_folders(path) is not None or (naming is not None and _named_files(path, naming) is not None)


def _release_dirs(root: Path) -> list[tuple[str, Path]]:
    """Release folders at `root`, or `root` itself when it is one."""
    own = source_for_release_dir(root.name)
    if own is not None and _holds_pairs(own, root):
        return [(own, root)]
    return [
        (source, path)
        for path in sorted(p for p in root.iterdir() if p.is_dir())
        if (source := source_for_release_dir(path.name)) is not None
    ]


def _matches_release(root: Path) -> bool:
    return bool(_release_dirs(root))


def _discover_release(root: Path) -> Discovery:
    found = Discovery("release")
    releases = _release_dirs(root)
    used = {path for _, path in releases}
    if root not in used:
        for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if path not in used:
                known = ", ".join(d for s in SOURCES.values() for d in s.release_dirs)
                found.skipped.append(Skipped(str(path), f"unknown dataset folder (known: {known})"))
    for source, path in releases:
        named = _release_pairs(source, path, found.skipped)
        if named is None:
            expected = ", ".join(f"{i}/ + {m}/" for i, m in PAIR_FOLDERS)
            naming = SOURCES[source].release_naming
            if naming is not None:
                expected += f", or the release's own N and {naming.mask_prefix}N files in {naming.images}/"
            found.skipped.append(Skipped(str(path), f"no image and mask folders ({expected})"))
            continue
        pairs = [PairRecord(source, stem, image, mask, "any") for stem, image, mask in named]
        if source == "kvasir":
            _attach_kvasir_boxes(pairs, path / KVASIR_BBOX_FILE, found.skipped)
        found.pairs.extend(pairs)
    return found


@dataclass(frozen=True)
class Layout:
    """A folder layout: how to recognise it and how to list its pairs."""

    name: str
    description: str
    matches: Callable[[Path], bool]
    discover: Callable[[Path], Discovery]


LAYOUTS: dict[str, Layout] = by_name(
    Layout(
        "pranet",
        "PraNet layout: TrainDataset/{images,masks} and TestDataset/<Dataset>/{images,masks}",
        _matches_pranet,
        _discover_pranet,
    ),
    Layout(
        "release",
        "original releases: Kvasir-SEG/{images,masks}, CVC-ClinicDB/{Original,Ground Truth}, "
        "CVC-ColonDB/ (N.tiff, pN.tiff), ETIS-LaribPolypDB/ (ETIS-LaribPolypDB/N.tif, Ground Truth/pN.tif), CVC-300/",
        _matches_release,
        _discover_release,
    ),
)


def discover(root: str | Path) -> Discovery:
    """Detect the layout of `root` and list its image/mask pairs.

    Raises:
        DataError: `root` is missing, or holds no known layout (the message lists what was looked
            for), or holds no pair at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Data root {root} does not exist or is not a folder.")
    looked_for = "; ".join(layout.description for layout in LAYOUTS.values())
    for layout in LAYOUTS.values():
        if layout.matches(root):
            found = layout.discover(root)
            if not found.pairs:
                raise DataError(
                    f"Found the {layout.name} layout at {root} but no image/mask pair in it. "
                    f"Expected {layout.description}."
                )
            return found
    raise DataError(
        f"No polyp dataset found at {root}. Looked for: {looked_for}. "
        "Point --data_root at the folder that holds them."
    )
