"""Publishing a checkpoint on the Hub: export, check, model card, upload.

The export is a plain `SamModel` folder; before anything is uploaded it is loaded back with vanilla
`transformers` and must give the source's logits.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, get_token
from PIL import Image
from safetensors.torch import save_file
from transformers import SamModel, SamProcessor

from polyp_sam_hf.core.errors import ConfigError, ExportCheckError, MissingTokenError, UploadTargetError
from polyp_sam_hf.core.files import replace_atomically, staging_folder
from polyp_sam_hf.data.preprocessing import Preprocessing, scale_boxes
from polyp_sam_hf.data.sources import SOURCES
from polyp_sam_hf.data.splits import SPLIT_PRESETS
from polyp_sam_hf.data.synthetic import synth_frame
from polyp_sam_hf.evaluation.comparison import clicks_section, results_section
from polyp_sam_hf.evaluation.record import EvaluationRecord, read_metrics
from polyp_sam_hf.models.convert import get_arch
from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.models.mask_prompts import CONFIG_KEY as MASK_PROMPT_KEY
from polyp_sam_hf.models.onnx_graphs import ONNX_DIR
from polyp_sam_hf.models.provenance import (
    base_model_of,
    config_value,
    earlier_runs,
    is_hub_id,
    model_origin,
    read_train_config,
    trained_split,
    weights_sha256,
)
from polyp_sam_hf.models.segmenter import decode
from polyp_sam_hf.publishing.onnx_export import export_onnx
from polyp_sam_hf.publishing.web_page import WEB_DIR, write_page
from polyp_sam_hf.training.checkpointing import save_pretrained_atomic

logger = logging.getLogger(__name__)

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "modelcard.md"
TAGS = ["medical", "colonoscopy", "polyp-segmentation", "segment-anything", "sam", "polyp-sam-hf"]
EXAMPLES_DIR = "examples"


def require_token() -> str:
    """The token from `HF_TOKEN` or the stored login; raises `MissingTokenError` without one."""
    token = get_token()
    if not token:
        raise MissingTokenError(
            "No Hugging Face token found. Set HF_TOKEN or run `hf auth login`, "
            "or use --dry_run DIR to write the upload without sending it."
        )
    return token


def _probe_inputs(processor: SamProcessor) -> dict:
    """A fixed frame and box, preprocessed: the same input for source and export."""
    rng = np.random.default_rng(0)
    frame = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    prep = Preprocessing.of(processor)  # the library's one preprocessing, as training and inference
    pixels, [reshaped] = prep.pixel_values([frame])
    box = scale_boxes([[16.0, 12.0, 90.0, 80.0]], (96, 128), reshaped)
    return {"pixel_values": pixels, "input_boxes": torch.from_numpy(box)[None]}


@torch.no_grad()
def _probe_logits(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """The model's single-mask logits on the probe input, flattened: its weights, box prompt only."""
    return decode(model.eval(), {"pixel_values": inputs["pixel_values"]}, inputs["input_boxes"],
                  mask_prompt="none").flatten()


def max_logit_difference(a: SamModel, b: SamModel, processor: SamProcessor) -> float:
    """Largest absolute difference of the two models' mask logits on the probe input."""
    inputs = _probe_inputs(processor)
    return float((_probe_logits(a, inputs) - _probe_logits(b, inputs)).abs().max())


# Run in a fresh interpreter where this library cannot be imported: what a Hub user without
# polyp-sam-hf gets. Reads the probe input the caller saved (safetensors), prints the logits as JSON.
_STANDALONE_LOAD = r"""
import json, sys
sys.modules["polyp_sam_hf"] = None  # importing the library now fails: the folder must stand alone
import torch
from safetensors.torch import load_file
from transformers import AutoModel, SamModel, SamProcessor
folder, probe = sys.argv[1], load_file(sys.argv[2])
config = json.load(open(folder + "/config.json"))
if "auto_map" in config:
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
else:
    model = SamModel.from_pretrained(folder)
SamProcessor.from_pretrained(folder)
with torch.no_grad():
    out = model.eval()(pixel_values=probe["pixel_values"], input_boxes=probe["input_boxes"], multimask_output=False)
print(json.dumps({"class": type(model).__name__, "logits": out.pred_masks.flatten().tolist()}))
"""


def standalone_logits(folder: str | Path, inputs: dict | None = None) -> tuple[str, torch.Tensor]:
    """(class name, probe logits) of `folder` loaded in a separate Python process in which
    `polyp_sam_hf` cannot be imported: plain `SamModel`, or `AutoModel` with `trust_remote_code`
    for a model whose code travels in the folder (`auto_map`). `inputs` defaults to
    `_probe_inputs` of the folder's processor.

    Raises:
        RuntimeError: the folder does not load without this library; the message has the error.
    """

    folder = Path(folder).resolve()
    inputs = inputs or _probe_inputs(SamProcessor.from_pretrained(folder))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.safetensors"
        save_file({"pixel_values": inputs["pixel_values"].contiguous(),
                   "input_boxes": inputs["input_boxes"].float().contiguous()}, str(probe))
        done = subprocess.run([sys.executable, "-c", _STANDALONE_LOAD, str(folder), str(probe)],
                              capture_output=True, text=True, env=env, cwd=folder)
    if done.returncode != 0:
        raise ExportCheckError(f"{folder} does not load without polyp-sam-hf installed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["class"], torch.tensor(result["logits"])


# How far an export's logits may lie from its source's, as a fraction of the logits' scale (their
# largest magnitude, at least 1). Both sides run the same model with the same float operations
# (`export_checkpoint` loads the source with transformers' own attention, as the export is loaded),
# so what remains is float32 rounding between two processes (thread counts change the order of
# sums): about 1e-7 of the scale per operation. 1e-5 leaves a hundredfold margin for that, and is
# far below what a single wrong weight does (tests/test_hub.py: over 1e-3).
LOGIT_RTOL = 1e-5


def logits_agree(expected: torch.Tensor, actual: torch.Tensor, rtol: float = LOGIT_RTOL) -> tuple[bool, float, float]:
    """(within tolerance, the largest absolute difference, the tolerance `rtol` x the logits' scale).
    Other shapes, NaN or infinity never agree."""
    tolerance = rtol * max(1.0, float(expected.abs().max()))
    diff = float((expected - actual).abs().max()) if actual.shape == expected.shape else float("inf")
    return diff <= tolerance, diff, tolerance  # NaN <= x is False


def export_checkpoint(model_dir: str | Path, out_dir: str | Path, rtol: float = LOGIT_RTOL,
                      shown_as: str | Path | None = None) -> Path:
    """Write `config.json`, `model.safetensors`, `preprocessor_config.json` (and processor files, and
    for a TinyViT model its modelling file) to `out_dir`, then load the export in a process without
    this library and compare its logits with the source's.

    The source is loaded with transformers' own attention (`vision_attention="transformers"`), the
    one a Hub user gets: the comparison is of like with like, so it checks the weights and the
    files, not the library's faster attention (whose float rounding differs). The weights written
    are the same either way.

    Args:
        rtol: the tolerance, a fraction of the logits' scale (`LOGIT_RTOL` says why 1e-5).
        shown_as: the folder the messages name (the user's, when `out_dir` is a staging folder).

    Raises:
        ExportCheckError: the export does not load on its own, or its logits differ from the source's
            by more than the tolerance.
    """
    source, processor = load_model_and_processor(str(model_dir), vision_attention="transformers")
    source.eval()
    save_pretrained_atomic(source, processor, out_dir)
    inputs = _probe_inputs(processor)
    _, exported = standalone_logits(out_dir, inputs)
    agree, diff, tolerance = logits_agree(_probe_logits(source, inputs), exported, rtol)
    if not agree:
        raise ExportCheckError(f"The export of {model_dir} to {shown_as or out_dir} gives logits {diff:.3g} away from "
                               f"the source's (tolerance {tolerance:.3g}); nothing was written or uploaded.")
    logger.info("Export loads without this library; logits match the source (max diff %.2g, tolerance %.2g)",
                diff, tolerance)
    return Path(out_dir)


def eval_results(record: EvaluationRecord) -> list[EvalResult]:
    """One model-index result per test dataset and metric, from `metrics.json`'s headline."""
    settings = record.settings
    results = []
    for source, entry in record.sources.items():
        info = SOURCES[source]
        for metric_type, name, key in (("dice", "Dice", "dice"), ("mean_iou", "mIoU", "miou")):
            results.append(EvalResult(
                task_type="image-segmentation",
                task_name="Box-prompted polyp segmentation",
                dataset_type=info.name,
                dataset_name=f"{info.display_name} ({settings.get('split', 'test')}, {entry.n} frames)",
                metric_type=metric_type,
                metric_name=name,
                metric_value=round(float(getattr(entry, key)), 4),
            ))
    return results


def write_examples(folder: Path, count: int = 2) -> list[str]:
    """Synthetic example frames for the widget (never the datasets' images: their terms forbid it)."""

    rng = np.random.default_rng(0)
    (folder / EXAMPLES_DIR).mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        image, _ = synth_frame(rng, num_polyps=1 + i)
        name = f"{EXAMPLES_DIR}/synthetic-polyp-{i + 1}.png"
        Image.fromarray(image).save(folder / name)
        names.append(name)
    return names


def _split_facts(train_config: dict | None) -> dict | None:
    """The recorded split of the run, with its preset's description, for the card's data section."""
    if not train_config or "split_preset" not in train_config:
        return None

    split = trained_split(train_config)
    return {"preset": split.preset, "description": SPLIT_PRESETS[split.preset].description,
            "val_fraction": split.val_fraction, "seed": split.seed}


LOCAL_PATH_SETTINGS = ("data", "output_dir", "cache_dir", "resume_from_checkpoint")  # the user's machine's


def _shown_settings(config: dict | None) -> str | None:
    """A run's settings as the card's YAML, less the paths of the machine it ran on."""
    kept = {k: v for k, v in (config or {}).items() if v is not None and k not in LOCAL_PATH_SETTINGS}
    return yaml.safe_dump(kept, sort_keys=False).strip() if kept else None


def build_model_card(export_dir: str | Path, repo_id: str, metrics: EvaluationRecord | None,
                     train_config: dict | None, examples: list[str]) -> ModelCard:
    """The card: metadata (licence, pipeline, base model, tags, model-index) and the body."""
    base = base_model_of(export_dir, train_config)
    if base is not None and not is_hub_id(base):  # never publish a local path as the base model
        raise ConfigError(f"The base model {base!r} is not a Hub id; refusing to write it into the card.")
    data = ModelCardData(
        language=None,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="mask-generation",
        base_model=base,
        base_model_relation="finetune" if base else None,
        tags=TAGS,
        metrics=["dice", "mean_iou"],
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(metrics) if metrics else None,
        widget=[{"src": f"https://huggingface.co/{repo_id}/resolve/main/{name}",
                 "example_title": Path(name).stem} for name in examples],
    )
    # a model trained in stages: every stage's settings, each later one starting from `stageN/best`,
    # where the card's Reproduce section has stage N write its run
    stages = [*earlier_runs(export_dir, train_config), train_config]
    stages = [stages[0], *({**run, "model_name_or_path": f"stage{i}/best"} for i, run in enumerate(stages[1:], 1))]
    settings = [_shown_settings(run) for run in stages]
    origin = model_origin(export_dir)
    return ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        repo_id=repo_id,
        base_model=base,
        origin=origin,
        origin_description=get_arch(origin["arch"]).description if origin else None,
        training_settings=settings[-1],
        earlier_settings=settings[:-1],
        results_table="\n\n".join([results_section(metrics), *([clicks_section(metrics)] if metrics.clicks else [])])
        if metrics else None,
        protocol=metrics.settings.get("protocol", "paper") if metrics else "paper",
        split=_split_facts(train_config),
        test_counts=", ".join(f"{SOURCES[s].display_name} {e.n}" for s, e in metrics.sources.items())
        if metrics else None,
        paper_run=metrics.run.paper_run if metrics else None,
        datasets=[SOURCES[s] for s in SOURCES],
        mask_prompt=config_value(export_dir, MASK_PROMPT_KEY) or "none",
        interactive_rounds=(train_config or {}).get("interactive_rounds", 1) > 1 and train_config["interactive_rounds"],
        onnx_files=[(f"onnx/{f.name}", f"{f.stat().st_size / 2**20:.1f} MiB")
                    for f in sorted((Path(export_dir) / ONNX_DIR).glob("*.onnx"))],
        web_page=(Path(export_dir) / WEB_DIR / "index.html").is_file(),
    )


EXPORT_MARKER = ".polyp-sam-hf-export"  # marks a folder this command wrote; never uploaded


def metrics_of(model_dir: str | Path, metrics_path: str | Path) -> EvaluationRecord:
    """The evaluation to put on the card, checked to be of this very model: the SHA-256 of the
    weights it scored (or, where it scored a Hub id and so recorded none, the model path) must match.

    Raises:
        ValueError: the file is no evaluation, or it scored another model (both named).
    """

    metrics = read_metrics(metrics_path)
    scored = metrics.model_sha256
    if scored is not None:
        if scored != weights_sha256(model_dir):
            raise ConfigError(f"{metrics_path} scored other weights than {model_dir} (SHA-256 {scored[:12]}... vs "
                             f"{(weights_sha256(model_dir) or 'none')[:12]}...): evaluate this model and pass that "
                             "metrics.json (nothing was uploaded).")
    elif Path(metrics.model or "").resolve() != Path(model_dir).resolve():
        raise ConfigError(f"{metrics_path} is an evaluation of {metrics.model!r}, not of {model_dir}: "
                         "evaluate this model and pass that metrics.json (nothing was uploaded).")
    return metrics


def prepare_upload(model_dir: str | Path, folder: str | Path, repo_id: str,
                   metrics_path: str | Path | None = None, onnx: bool = False, web: bool = False) -> Path:
    """Write exactly what would be uploaded into `folder`: the export, README.md, examples/, with
    `onnx` the checked ONNX graphs in onnx/ (`publishing.onnx_export`), and with `web` (which implies
    `onnx`) the static page that runs them in a browser in web/ (`publishing.web_page`).

    Nothing the library did not write is deleted: `folder` must be new, empty, or an earlier
    export of this command, and must not hold the model. The upload is built in a sibling
    staging folder and renamed into place, so an interrupted run leaves `folder` as it was.

    Raises:
        UploadTargetError: `folder` is a file, holds other files, or holds the model itself.
    """
    folder, model = Path(folder), Path(model_dir)
    if folder.exists() and not folder.is_dir():
        raise UploadTargetError(f"{folder} is a file; give a folder for the upload (nothing was changed).")
    if model.exists() and (folder.resolve() == model.resolve() or folder.resolve() in model.resolve().parents):
        raise UploadTargetError(f"{folder} holds the model {model_dir}; write the upload to another folder "
                         "(nothing was changed).")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / EXPORT_MARKER).is_file():
        raise UploadTargetError(f"{folder} is not empty and is not an earlier export of hub_upload.py; give a new or "
                         "empty folder (nothing was deleted).")
    metrics = metrics_of(model_dir, metrics_path) if metrics_path else None
    staging = staging_folder(folder, "export-tmp")
    try:
        export_checkpoint(model_dir, staging, shown_as=folder)
        if onnx or web:
            export_onnx(staging, shown_as=folder)
        if web:
            write_page(staging, SamProcessor.from_pretrained(staging), repo_id)
        examples = write_examples(staging)
        card = build_model_card(staging, repo_id, metrics, read_train_config(model_dir), examples)
        card.save(staging / "README.md")
        (staging / EXPORT_MARKER).write_text("Written by hub_upload.py; the next export into this folder replaces it.\n")
    except BaseException:  # a refused check or a crash leaves nothing of the export behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_atomically(staging, folder)
    return folder


def upload(folder: str | Path, repo_id: str, token: str, private: bool = False) -> str:
    """Create the repository if needed and push `folder` in one commit; returns the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type="model", ignore_patterns=[EXPORT_MARKER],
        commit_message=f"Upload {repo_id.split('/')[-1]}: fine-tuned SAM for box-prompted polyp segmentation",
    )
    return str(getattr(info, "commit_url", info))
