"""`polyp-sam predict`: masks and overlays for new frames from box and click prompts.

    polyp-sam predict --model_name_or_path runs/x/best --image frame.png --box 120,80,310,260 --output_dir pred
    polyp-sam predict --model_name_or_path runs/x/best --image frame.png --point 200,170 --point 90,60,0 --output_dir pred
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from polyp_sam_hf.core.arguments import check_choices
from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.data.prompts import PROMPT_MODE_REGISTRY, get_prompt_mode, parse_box, parse_point
from polyp_sam_hf.data.reading import IMAGE_EXTENSIONS, DataError
from polyp_sam_hf.evaluation.figures import overlay
from polyp_sam_hf.models.segmenter import BACKENDS, PolypSegmenter, to_mask, union_mask, validate_boxes


@dataclass
class PredictArguments:
    model_name_or_path: str = field(metadata={"help": "Hub id, folder, or built-in name"})
    image: Path = field(metadata={"help": "an image file or a folder of them"})
    output_dir: Path = field(metadata={"help": "folder for the masks and overlays"})
    box: list[str] | None = field(default=None, metadata={
        "repeat": True, "help": "x0,y0,x1,y1 in pixels; repeat for several"})
    boxes_file: Path | None = field(default=None, metadata={
        "help": "JSON {image: [[x0,y0,x1,y1], ...]} or CSV image,x0,y0,x1,y1"})
    point: list[str] | None = field(default=None, metadata={
        "repeat": True, "help": "a click x,y in pixels, or x,y,label with label 1 on polyp (the default) and 0 on "
                                "what is not; repeat for several, in the order a person clicks (each a correction "
                                "round on the last mask): alone, one prompt of them all; with --box, each corrects "
                                "the box it falls in or lies nearest"})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu, ... (default: cuda when present)"})
    backend: str = field(default="torch", metadata={
        "help": "torch, or the folder's ONNX graphs under ONNX Runtime on the CPU: onnx (float32) or onnx-int8 "
                "(`polyp-sam export --onnx` writes them)", "choices": sorted(BACKENDS)})
    prompt_mode: str = field(default="box", metadata={
        "help": f"one of {', '.join(PROMPT_MODE_REGISTRY)}: a box mode takes the boxes given (--box, --boxes_file); "
                "none: no box (a model trained with --prompt_mode none); auto: boxes made from that prompt-free mask"})

    def __post_init__(self) -> None:
        get_prompt_mode(self.prompt_mode)  # an old or unknown name: the error names the valid ones
        check_choices(self)


def run(args: PredictArguments) -> int:
    boxes = [parse_box(b) for b in args.box or []] or None
    clicks = [parse_point(p) for p in args.point or []]
    written = run_predict(args.model_name_or_path, args.image, args.output_dir, boxes, args.boxes_file, args.device,
                          args.prompt_mode, clicks or None, args.backend)
    print(f"Wrote {len(written)} masks and overlays to {args.output_dir}")
    return 0


def read_boxes_file(path: str | Path) -> dict[str, list[list[float]]]:
    """Boxes per image from JSON (`{"name": [[x0, y0, x1, y1], ...]}`) or CSV (`image,x0,y0,x1,y1`).

    Keys are file names or stems; both match.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Boxes file {path} not found.")
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{path} is not valid JSON: {err}") from None
        return _json_boxes(raw, path)
    boxes: dict[str, list[list[float]]] = {}
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                boxes.setdefault(row["image"], []).append([float(row[k]) for k in ("x0", "y0", "x1", "y1")])
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{path}, line {line}: expected columns image,x0,y0,x1,y1 with numbers.") from None
    return boxes


def _json_boxes(raw, path: Path) -> dict[str, list[list[float]]]:
    """`{"name": [[x0, y0, x1, y1], ...]}` checked entry by entry; a one-box entry may be flat."""
    form = 'an object {"frame.png": [[x0, y0, x1, y1], ...]}'
    if not isinstance(raw, dict):
        raise DataError(f"{path} holds a JSON {type(raw).__name__}; expected {form}.")
    boxes = {}
    for name, value in raw.items():
        if isinstance(value, list) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
            value = [value]  # one box written flat
        if not isinstance(value, list) or not value or not all(
                isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                            for v in b) for b in value):
            raise DataError(f"{path}: entry {name!r} is {json.dumps(value)[:80]}; expected a list of boxes, each "
                            f"four numbers [x0, y0, x1, y1] in pixels ({form}).")
        boxes[str(name)] = [[float(v) for v in b] for b in value]
    return boxes


def _images(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not found:
            raise DataError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in {path}.")
        return found
    if not path.exists():
        raise DataError(f"Image {path} not found.")
    return [path]


def run_predict(model: str, image: str | Path, output: str | Path, boxes: list[list[float]] | None = None,
                boxes_file: str | Path | None = None, device: str | None = None,
                prompt_mode: str = "box", clicks: list[tuple[float, float, int]] | None = None,
                backend: str = "torch") -> list[Path]:
    """Predict every image's masks; write `<stem>_mask.png` (union, 0/255), `<stem>_mask_<k>.png`
    per box when there are several, and `<stem>_overlay.png`. Returns the mask paths.

    `clicks`: `(x, y, label)` in pixels, in order (`PolypSegmenter.session_logits`): with boxes, each
    corrects the box it falls in or lies nearest; without, one prompt of them all.

    `prompt_mode`: a `PromptMode` name. A box mode (`box`, `box-per-polyp`) takes the boxes given;
    `none` no box (a model trained with `--prompt_mode none` marks every polyp it finds); `auto` boxes
    made from that prompt-free mask (they are drawn on the overlay).
    """
    mode = get_prompt_mode(prompt_mode)
    images = _images(Path(image))
    per_image = read_boxes_file(boxes_file) if boxes_file else {}
    if mode.given_true_box:
        for path in images:
            if not (per_image.get(path.name) or per_image.get(path.stem) or boxes or clicks):
                raise ConfigError(f"No box for {path}: give --box x0,y0,x1,y1 or list it in --boxes_file, or use "
                                  "--prompt_mode auto or none with a model trained without boxes.")
    segmenter = PolypSegmenter.from_pretrained(model, device=device, backend=backend)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(images, desc="Predicting", unit="img"):
        frame = segmenter.as_image(path)
        embedded = segmenter.embed(frame)
        chosen = None
        if mode.given_true_box and clicks:  # clicks, beside the boxes or alone
            chosen = per_image.get(path.name) or per_image.get(path.stem) or boxes
            logits = segmenter.session_logits(embedded, chosen, clicks, str(path))  # in order, as a person clicks
        elif mode.given_true_box:
            chosen = per_image.get(path.name) or per_image.get(path.stem) or boxes
            chosen = validate_boxes(chosen, frame.width, frame.height, name=str(path))
            logits, chosen = segmenter.logits_for_mode(embedded, mode, chosen)
        else:
            logits, chosen = segmenter.logits_for_mode(embedded, mode, chosen)
        masks = to_mask(logits).cpu().numpy() if logits is not None else np.zeros((0, frame.height, frame.width), bool)
        chosen = np.zeros((0, 4), np.float32) if chosen is None else chosen
        union = union_mask(logits, frame.height, frame.width)
        Image.fromarray(union.astype(np.uint8) * 255).save(output / f"{path.stem}_mask.png")
        if len(masks) > 1:
            for k, mask in enumerate(masks):
                Image.fromarray(mask.astype(np.uint8) * 255).save(output / f"{path.stem}_mask_{k}.png")
        overlay(frame, union, None, np.asarray(chosen).tolist(), clicks).save(output / f"{path.stem}_overlay.png")
        written.append(output / f"{path.stem}_mask.png")
    return written
