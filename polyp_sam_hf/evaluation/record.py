"""What an evaluation measured, typed: `polyp-sam evaluate` writes an `EvaluationRecord` as
metrics.json, and the tables, the comparison with the paper and the model card read it back.

Records written by earlier versions are read with today's names (settings renamed since, prompt
modes renamed since). The file's layout:

    settings          the evaluation's settings (`EvaluateConfig`), the split and `synthetic`
    run               what the model is (`RunIdentity`)
    model_sha256      of the weights scored
    primary           the headline: {"prompt_mode", "box_jitter"}
    sources, all      the headline's scores per source, and over every frame
    results           method -> prompt mode -> jitter level -> source (and "all") -> `Scores`
    empty_mask_frames, empty_mask_policy
    clicks            with `--clicks`: per start and source, the Dice and IoU curves and NoC@85 / NoC@90
                      (`evaluation.clicks.summarise_clicks`)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from polyp_sam_hf.core.arguments import current_settings
from polyp_sam_hf.core.errors import DataError
from polyp_sam_hf.data.prompts import current_prompt_mode_name


@dataclass(frozen=True)
class RunIdentity:
    """What an evaluated model is, for placing it beside the paper.

    Attributes:
        label: the row's name (a paper run's name, or the model's path or id).
        method: `Polyp-SAM-B` / `Polyp-SAM-L` when fine-tuned from SAM ViT-B / ViT-L, else None.
        strategy: `decoder`, `prompt-decoder`, `full`, `lora`, `lora-prompt-decoder`, or None when not trained
            by this library.
        split: the split preset of the test data (`paper`, `cross-colondb`, ...), None if unknown.
        paper_run: the paper run this model was declared to reproduce (`--paper_run`), if any.
    """

    label: str
    method: str | None = None
    strategy: str | None = None
    split: str | None = None
    paper_run: str | None = None


@dataclass(frozen=True)
class Scores:
    """One method's scores on one source (or "all") for one prompt mode and jitter level.

    Attributes:
        n: frames with a polyp (those in the means).
        dice, miou: mean Dice and mean IoU over them.
        recall: the share of polyps found (None where there is none).
        fp_per_frame: predicted components that find no polyp, per frame (empty ones included).
        nothing_found: self-prompted only: frames where the prompt-free pass found nothing.
    """

    n: int
    dice: float
    miou: float
    recall: float | None = None
    fp_per_frame: float | None = None
    nothing_found: int | None = None

    @property
    def pair(self) -> tuple[float, float]:
        return self.dice, self.miou

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not (k == "nothing_found" and v is None)}


Results = dict[str, dict[str, dict[str, dict[str, Scores]]]]  # method -> mode -> jitter -> source -> Scores


@dataclass
class EvaluationRecord:
    """metrics.json, typed (the module docstring lists its parts)."""

    settings: dict
    run: RunIdentity
    model_sha256: str | None
    primary_mode: str
    primary_jitter: float
    results: Results
    empty_mask_frames: list[str]
    empty_mask_policy: str
    clicks: dict | None = None

    def scores(self, method: str = "model", mode: str | None = None, jitter: float | None = None
               ) -> dict[str, Scores]:
        """Per source (and "all"): a method's scores for a prompt mode and jitter level (default:
        the headline's); empty where the method has none there."""
        mode = self.primary_mode if mode is None else mode
        level = str(self.primary_jitter if jitter is None else jitter)
        return self.results.get(method, {}).get(mode, {}).get(level, {})

    @property
    def sources(self) -> dict[str, Scores]:
        """The headline's scores per source."""
        return {s: v for s, v in self.scores().items() if s != "all"}

    @property
    def all(self) -> Scores:
        """The headline's scores over every frame."""
        return self.scores()["all"]

    @property
    def model_modes(self) -> list[str]:
        """The prompt modes the model was scored with, the headline's first."""
        return list(self.results["model"])

    @property
    def model(self) -> str | None:
        """The model that was scored, as it was given (`--model_name_or_path`)."""
        return self.settings.get("model_name_or_path")

    @property
    def synthetic(self) -> bool:
        return bool(self.settings.get("synthetic"))

    @property
    def scored_split(self) -> str:
        """Which split of the data was scored (`evaluate --split`): the published rows are of test frames."""
        return self.settings.get("split") or "test"

    def to_json(self) -> dict:
        return {
            "settings": self.settings,
            "run": asdict(self.run),
            "model_sha256": self.model_sha256,
            "primary": {"prompt_mode": self.primary_mode, "box_jitter": self.primary_jitter},
            "sources": {s: v.to_json() for s, v in self.sources.items()},
            "all": self.all.to_json(),
            "results": {method: {mode: {level: {s: v.to_json() for s, v in per.items()} for level, per in levels.items()}
                                 for mode, levels in modes.items()} for method, modes in self.results.items()},
            "empty_mask_frames": self.empty_mask_frames,
            "empty_mask_policy": self.empty_mask_policy,
            **({"clicks": self.clicks} if self.clicks else {}),
        }

    @classmethod
    def from_json(cls, data: dict) -> "EvaluationRecord":
        known = {f.name for f in fields(Scores)}
        mode_name = current_prompt_mode_name
        results = {method: {mode_name(mode): {level: {s: Scores(**{k: v for k, v in e.items() if k in known})
                                                      for s, e in per.items()} for level, per in levels.items()}
                            for mode, levels in modes.items()} for method, modes in data["results"].items()}
        settings = current_settings(data["settings"])
        if "prompt_mode" in settings:
            settings["prompt_mode"] = [mode_name(m) for m in settings["prompt_mode"]]
        return cls(settings=settings, run=RunIdentity(**data["run"]), model_sha256=data.get("model_sha256"),
                   primary_mode=mode_name(data["primary"]["prompt_mode"]),
                   primary_jitter=float(data["primary"]["box_jitter"]),
                   results=results, empty_mask_frames=list(data.get("empty_mask_frames", [])),
                   empty_mask_policy=data.get("empty_mask_policy", ""), clicks=data.get("clicks"))

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))


def read_metrics(path: str | Path) -> EvaluationRecord:
    """`metrics.json` from the file or the folder holding it.

    Raises:
        DataError: nothing there is an evaluation's metrics.json (says how to make one).
    """
    path = Path(path)
    file = path / "metrics.json" if path.is_dir() else path
    if not file.is_file():
        hint = f" (a training run: evaluate it first, `polyp-sam evaluate --model_name_or_path {path / 'best'} ...`)" \
            if (path / "best").is_dir() else ""
        raise DataError(f"{path} holds no metrics.json{hint}.")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{file} is not valid JSON ({err}).") from None
    if not {"results", "primary", "settings", "run"} <= set(data):
        raise DataError(f"{file} is not a metrics.json written by `polyp-sam evaluate`.")
    return EvaluationRecord.from_json(data)
