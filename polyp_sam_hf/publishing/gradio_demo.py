"""The demo in the browser (Gradio): upload a frame, give boxes and clicks, get the mask.

A box is drawn by clicking two opposite corners on the frame, or typed as `x0,y0,x1,y1`; a click
on the polyp (or, with the toggle, on what is not polyp) corrects the mask at once, re-running only
the prompt encoder and mask decoder on the frame's stored embedding. Clicks are given in order, as
the model was trained and evaluated (`PolypSegmenter.session_logits`): each box alone first, then
its clicks one round at a time on the previous round's logits. Undo removes the last click (or box).
The result is the overlay and the mask as a PNG to download.
"""

import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.data.clicks import NOT_POLYP, POLYP
from polyp_sam_hf.data.prompts import PROMPT_MODE_REGISTRY, PromptMode, get_prompt_mode, parse_box, parse_point
from polyp_sam_hf.evaluation.figures import overlay
from polyp_sam_hf.models.loading import BUILTIN_MODELS
from polyp_sam_hf.models.provenance import read_train_config
from polyp_sam_hf.models.segmenter import ImageEmbedding, PolypSegmenter, union_mask

INSTRUCTIONS = (
    "Upload a colonoscopy frame, then click two opposite corners of a box around each polyp "
    "(or type boxes as `x0,y0,x1,y1; ...` in pixels). To correct the mask, switch *Click adds* to "
    "**polyp** and click on missed polyp, or to **not polyp** and click where the mask is wrong: each "
    "click updates the mask. Clicks alone, with no box, work too. "
    "Research use only: not a medical device."
)


logger = logging.getLogger(__name__)

# Largest frame the app decodes: colonoscopy frames are at most about 1920 x 1080; a 10000 x 10000
# upload would take gigabytes. The size is read from the file's header before anything is decoded.
MAX_PIXELS = 4096 * 4096
MAX_FILE_SIZE = "50mb"  # refused by the server before it is stored

# where the app looks for a real model when none is given: $POLYP_SAM_MODEL, then the folder that
# `polyp-sam convert --arch mobile-sam` writes by default
MODEL_ENV = "POLYP_SAM_MODEL"
# the fine-tuned MobileSAM exported by `polyp-sam export ... --output_dir models/polyp-sam-mobile` (README),
# else the zero-shot one `polyp-sam convert --arch mobile-sam` writes
DEFAULT_MODEL_DIRS = (Path("models") / "polyp-sam-mobile", Path("models") / "mobile-sam")
RANDOM_WEIGHTS_WARNING = (
    "**Warning: this demo runs `{name}`, a SAM with random weights: its masks mean nothing.** "
    "Convert MobileSAM once (`polyp-sam convert --arch mobile-sam`, writes models/mobile-sam) or pass "
    "`--model_name_or_path` a fine-tuned folder."
)


def choose_model(name: str | None) -> tuple[str, str | None]:
    """(model to load, warning to show or None): `name` if given, else $POLYP_SAM_MODEL, else the
    first of `DEFAULT_MODEL_DIRS` that holds a model, else `tiny-sam`. Built-in models have random
    weights, so they always come with a warning."""
    if not name:
        found = [str(d) for d in DEFAULT_MODEL_DIRS if (d / "config.json").is_file()]
        name = os.environ.get(MODEL_ENV) or (found[0] if found else "tiny-sam")
    warning = RANDOM_WEIGHTS_WARNING.format(name=name) if name in BUILTIN_MODELS else None
    if warning:
        logger.warning(warning.replace("**", ""))
    return name, warning


# the modes that need no box from the person: one button each, for a model trained to find polyps alone
NO_BOX_MODES = [mode for mode in PROMPT_MODE_REGISTRY.values() if not mode.given_true_box]


def trained_prompt_free(name: str) -> bool:
    """Whether the model in folder `name` was trained with no prompt (its run record's prompt mode gives
    no box): only such a model finds polyps without a box, so only it gets the app's no-box buttons."""
    record = read_train_config(name) if Path(name).is_dir() else None
    mode = (record or {}).get("prompt_mode")
    return mode is not None and get_prompt_mode(mode).boxes is None


class EmbeddingMemo:
    """The last few frames' image embeddings, by the frame's pixels, each with the logits of the
    prompt rounds given on it: a new box or click on the same frame costs only the prompt encoder
    and mask decoder, once, not the image encoder."""

    def __init__(self, segmenter: PolypSegmenter, size: int = 4) -> None:
        self.segmenter, self.size = segmenter, size
        self._memo: OrderedDict[str, tuple[ImageEmbedding, dict]] = OrderedDict()

    def __call__(self, frame: Image.Image) -> ImageEmbedding:
        return self.entry(frame)[0]

    def entry(self, frame: Image.Image) -> tuple[ImageEmbedding, dict]:
        """(the frame's embedding, its rounds: `PolypSegmenter.session_logits`' `rounds`)."""
        key = hashlib.sha256(frame.tobytes() + repr(frame.size).encode()).hexdigest()
        if key in self._memo:
            self._memo.move_to_end(key)
        else:
            self._memo[key] = (self.segmenter.embed(frame), {})
            if len(self._memo) > self.size:
                self._memo.popitem(last=False)
        return self._memo[key]


def _entries(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").replace("\n", ";").split(";") if part.strip()]


def parse_boxes(text: str, required: bool = True) -> list[list[float]]:
    """`"x0,y0,x1,y1; x0,y0,x1,y1"` -> list of boxes; a `ValueError` explains a bad entry, or (with
    `required`) that there is none."""
    boxes = [parse_box(part) for part in _entries(text)]
    if not boxes and required:
        raise ConfigError("Draw or type at least one box (x0,y0,x1,y1).")
    return boxes


def parse_clicks(text: str) -> list[tuple[float, float, int]]:
    """`"x,y,label; x,y,label"` -> clicks in order (label 1 on polyp, 0 on what is not; 1 if left out)."""
    return [parse_point(part) for part in _entries(text)]


def format_click(x: int, y: int, label: int) -> str:
    return f"{x},{y},{label}"


# what a click on the frame adds: a box corner, or a click on polyp / on what is not
CLICK_KINDS = {"box corner": None, "polyp": POLYP, "not polyp": NOT_POLYP}


def add_click(clicks_text: str, x: int, y: int, label: int) -> str:
    """The clicks text with one more click at the end."""
    click = format_click(x, y, label)
    return f"{clicks_text.strip()}; {click}" if clicks_text.strip() else click


def undo(boxes_text: str, clicks_text: str) -> tuple[str, str]:
    """The last click taken back, or the last box where there is no click left."""
    clicks, boxes = _entries(clicks_text), _entries(boxes_text)
    if clicks:
        clicks.pop()
    elif boxes:
        boxes.pop()
    return "; ".join(boxes), "; ".join(clicks)


def add_corner(pending: list | None, boxes_text: str, x: int, y: int) -> tuple[list | None, str]:
    """One click: the first corner is remembered; the second completes a box appended to the text."""
    if not pending:
        return [x, y], boxes_text
    (x0, y0), (x1, y1) = pending, (x, y)
    box = f"{min(x0, x1)},{min(y0, y1)},{max(x0, x1)},{max(y0, y1)}"
    return None, f"{boxes_text.strip()}; {box}" if boxes_text.strip() else box


LAUNCH_SETTINGS = {"show_error": True, "max_file_size": MAX_FILE_SIZE}


def check_frame_size(path: str | Path) -> None:
    """Refuse a frame over `MAX_PIXELS` from its header, before it is decoded.

    Raises:
        ValueError: the frame is too large (its size and the limit are named), or not an image.
    """
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, Image.DecompressionBombError) as err:
        raise ConfigError(f"The upload is not an image this app reads: {err}") from None
    if width * height > MAX_PIXELS:
        raise ConfigError(f"The frame is {width} x {height} pixels; this app takes frames up to {MAX_PIXELS:,} pixels "
                         "(e.g. 4096 x 4096). Resize it first: colonoscopy frames are about 1920 x 1080.")


def segment(segmenter: PolypSegmenter, image: Image.Image | np.ndarray, boxes_text: str,
            out_dir: str | Path, memo: EmbeddingMemo | None = None, clicks_text: str = "") -> tuple[Image.Image, str]:
    """Predict the union mask for the typed/drawn boxes and the clicks in order
    (`PolypSegmenter.session_logits`); returns the overlay (boxes and clicks drawn) and the mask's path.

    With `memo`, the image encoder runs once per frame however many times it is segmented, and each
    prompt round once: one more click costs one decoder call.
    """
    if image is None:
        raise ConfigError("Upload a frame first.")
    if isinstance(image, (str, Path)):
        check_frame_size(image)
    frame = segmenter.as_image(image)
    clicks = parse_clicks(clicks_text)
    boxes = parse_boxes(boxes_text, required=not clicks)
    embedded, rounds = memo.entry(frame) if memo else (segmenter.embed(frame), None)
    logits = segmenter.session_logits(embedded, boxes or None, clicks, "the uploaded frame", rounds)
    union = union_mask(logits, frame.height, frame.width)
    path = Path(tempfile.mkdtemp(dir=out_dir)) / "polyp_mask.png"
    Image.fromarray(union.astype(np.uint8) * 255).save(path)
    return overlay(frame, union, None, boxes, clicks), str(path)


def auto_segment(segmenter: PolypSegmenter, image, mode: PromptMode, out_dir: str | Path,
                 memo: EmbeddingMemo | None = None) -> tuple[Image.Image, str, str]:
    """No box from the person: a `mode` that gives none, either self-prompted (`auto`: the boxes the
    model proposes itself, `PolypSegmenter.auto_logits`, returned as text so the person can correct
    one and press Segment) or prompt-free (`none`: the mask itself, no boxes). Needs a model trained
    with `--prompt_mode none` to find anything useful.

    Returns:
        The overlay (proposed boxes drawn), the mask's path, and the boxes text (`""`: none found).
    """
    if image is None:
        raise ConfigError("Upload a frame first.")
    if isinstance(image, (str, Path)):
        check_frame_size(image)
    frame = segmenter.as_image(image)
    embedded = memo(frame) if memo else segmenter.embed(frame)
    logits, boxes = segmenter.logits_for_mode(embedded, mode)
    boxes = np.zeros((0, 4), np.float32) if boxes is None else boxes
    union = union_mask(logits, frame.height, frame.width)
    path = Path(tempfile.mkdtemp(dir=out_dir)) / "polyp_mask.png"
    Image.fromarray(union.astype(np.uint8) * 255).save(path)
    text = "; ".join(",".join(str(int(round(v))) for v in box) for box in boxes)
    return overlay(frame, union, None, boxes.tolist()), str(path), text


def build_app(segmenter: PolypSegmenter, title: str = "Polyp-SAM: polyp segmentation from boxes and clicks",
              warning: str | None = None, prompt_free: bool = False):
    """The Gradio Blocks app; its `segment` endpoint takes (image, boxes text, clicks text). `warning` is shown
    above everything (e.g. that the model has random weights). With `prompt_free` (a model trained
    with `--prompt_mode none`, `trained_prompt_free`) it also offers a button and an endpoint per
    mode of `NO_BOX_MODES` (`none`, `auto`); a box-trained model given no box returns a mask of
    nothing useful, so it is not offered. Launch it with `LAUNCH_SETTINGS` (the library's error
    texts shown in the page, uploads bounded)."""
    import gradio as gr  # here: the app extra, optional (commands/app.py says how to install it)

    out_dir = tempfile.mkdtemp(prefix="polyp-sam-app-")
    memo = EmbeddingMemo(segmenter)

    def run(image, boxes_text, clicks_text=""):
        try:
            return segment(segmenter, image, boxes_text or "", out_dir, memo, clicks_text or "")
        except ValueError as err:  # the library's messages (bad box, no frame, too large): shown as they are
            raise gr.Error(str(err), print_exception=False) from None

    def rerun(image, boxes_text, clicks_text):
        """After an undo: the mask of what is left, or nothing where no prompt is left."""
        if not (_entries(boxes_text) or _entries(clicks_text)):
            return None, None
        return run(image, boxes_text, clicks_text)

    def run_without_box(mode: PromptMode):
        def handler(image):
            try:
                overlay_image, mask_path, boxes_text = auto_segment(segmenter, image, mode, out_dir, memo)
            except ValueError as err:
                raise gr.Error(str(err), print_exception=False) from None
            # self-made boxes land in the box field: correct one, or clear and draw, then Segment
            return (overlay_image, mask_path, boxes_text) if mode.self_prompted else (overlay_image, mask_path)
        return handler

    def click(pending, boxes_text, clicks_text, kind, image, evt: gr.SelectData):
        """A click on the frame: a box corner, or a click on polyp / not polyp; the mask is updated
        when a box is complete or a click is added (a first corner leaves it as it is)."""
        x, y = int(evt.index[0]), int(evt.index[1])
        label = CLICK_KINDS.get(kind)
        if label is None:
            pending, boxes_text = add_corner(pending, boxes_text or "", x, y)
            if pending:
                return pending, boxes_text, clicks_text, gr.skip(), gr.skip()
        else:
            clicks_text = add_click(clicks_text or "", x, y, label)
        return (pending, boxes_text, clicks_text, *run(image, boxes_text, clicks_text))

    def take_back(image, boxes_text, clicks_text):
        boxes_text, clicks_text = undo(boxes_text or "", clicks_text or "")
        return (None, boxes_text, clicks_text, *rerun(image, boxes_text, clicks_text))

    with gr.Blocks(title=title) as app:
        gr.Markdown(f"# {title}\n{INSTRUCTIONS}")
        if warning:
            gr.Markdown(warning, elem_id="model-warning")
        pending = gr.State(None)
        with gr.Row():
            with gr.Column():
                # a file path: the size is checked from the header before the frame is decoded
                image = gr.Image(type="filepath", label="Colonoscopy frame", elem_id="frame")
                kind = gr.Radio(list(CLICK_KINDS), value="box corner", label="Click adds", elem_id="click-kind")
                boxes = gr.Textbox(label="Boxes (x0,y0,x1,y1; ...)", elem_id="boxes")
                clicks = gr.Textbox(label="Clicks (x,y,label; ...: label 1 polyp, 0 not polyp)", elem_id="clicks")
                with gr.Row():
                    undo_button = gr.Button("Undo", elem_id="undo")
                    clear = gr.Button("Clear", elem_id="clear")
                    no_box = {mode.name: gr.Button(mode.label.capitalize(), elem_id=mode.name)
                              for mode in (NO_BOX_MODES if prompt_free else [])}
                    button = gr.Button("Segment", variant="primary", elem_id="segment")
            with gr.Column():
                result = gr.Image(type="pil", format="png", label="Mask overlay", elem_id="overlay")
                mask_file = gr.File(label="Mask (PNG, 0/255)", elem_id="mask")
        image.select(click, [pending, boxes, clicks, kind, image], [pending, boxes, clicks, result, mask_file],
                     api_name=False)
        undo_button.click(take_back, [image, boxes, clicks], [pending, boxes, clicks, result, mask_file],
                          api_name=False)
        clear.click(lambda: (None, "", "", None, None), None, [pending, boxes, clicks, result, mask_file],
                    api_name=False)
        button.click(run, [image, boxes, clicks], [result, mask_file], api_name="segment")
        for mode in NO_BOX_MODES if prompt_free else []:
            outputs = [result, mask_file, boxes] if mode.self_prompted else [result, mask_file]
            no_box[mode.name].click(run_without_box(mode), [image], outputs, api_name=mode.name)
    return app
