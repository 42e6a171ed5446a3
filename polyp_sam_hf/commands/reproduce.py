"""`polyp-sam reproduce`: every run of the paper's Tables 1-3, evaluated and set beside the paper.

    polyp-sam reproduce --data_root DATA --output_dir OUT [--gpus 2] [--dry_run]

Steps, each skipped when its result is already there (so running it again resumes):

1. `prepare` both splits: OUT/data/paper and OUT/data/cross-colondb;
2. per paper run (`configs/paper/<name>.yaml`), `accelerate launch` the training into
   OUT/runs/<name> (continuing from its latest checkpoint if it stopped);
3. `evaluate` each `best/` into OUT/eval/<name> (declared as that paper run);
4. write OUT/comparison.md: every published cell beside ours, and the difference.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from polyp_sam_hf.core.arguments import PACKAGED_CONFIGS
from polyp_sam_hf.core.errors import ConfigError, StepFailedError
from polyp_sam_hf.data.loading import is_prepared
from polyp_sam_hf.evaluation.comparison import comparison_markdown
from polyp_sam_hf.evaluation.published import PAPER_RUNS
from polyp_sam_hf.evaluation.record import read_metrics
from polyp_sam_hf.training.checkpointing import FINISHED, resolve_checkpoint

logger = logging.getLogger(__name__)

REPO_CONFIGS = PACKAGED_CONFIGS / "paper"


@dataclass
class ReproduceConfig:
    """Settings of one reproduction (`polyp-sam reproduce`)."""

    data_root: Path = field(metadata={"help": "PraNet layout or original releases"})
    output_dir: Path = field(metadata={"help": "data/, runs/, eval/ and comparison.md go here"})
    gpus: int = field(default=1, metadata={"help": "processes for accelerate launch, one per GPU"})
    accelerate_config: Path | None = field(default=None, metadata={
        "help": "an accelerate config file instead of --gpus (multi-node, CPU ranks)"})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "replace every config's model (a local copy of SAM ViT-B/L, a built-in)"})
    configs: Path = field(default=REPO_CONFIGS, metadata={"help": "the folder of paper configs"})
    run: list[str] | None = field(default=None, metadata={
        "repeat": True, "help": f"only this run (repeatable): {', '.join(PAPER_RUNS)}"})
    train_args: tuple[str, ...] = field(default=(), metadata={
        "rest": True, "help": "after --: further train.py flags for every run, e.g. -- --max_train_steps 100"})
    dry_run: bool = field(default=False, metadata={"help": "print the commands; run nothing"})

    def __post_init__(self) -> None:
        self.run = tuple(self.run or PAPER_RUNS)
        self.train_args = tuple(self.train_args)
        if self.gpus < 1:
            raise ConfigError(f"--gpus {self.gpus}: give at least 1.")


@dataclass
class Step:
    """One command of the plan; `done` steps are listed but not run."""

    what: str
    argv: list[str] = field(default_factory=list)
    done: bool = False
    reason: str = ""


def run(config: ReproduceConfig) -> int:
    reproduce(config)  # a failed step is a StepFailedError: the command line prints it as one line, exit 1
    return 0


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "polyp_sam_hf", *map(str, args)]


def _launcher(config: ReproduceConfig) -> list[str]:
    argv = [sys.executable, "-m", "accelerate.commands.launch"]
    if config.accelerate_config:
        return argv + ["--config_file", str(config.accelerate_config)]
    argv += ["--num_processes", str(config.gpus), "--num_machines", "1", "--dynamo_backend", "no"]
    return argv + (["--multi_gpu"] if config.gpus > 1 else [])


def data_dir(config: ReproduceConfig, split: str) -> Path:
    return config.output_dir / "data" / split


def run_dir(config: ReproduceConfig, name: str) -> Path:
    return config.output_dir / "runs" / name


def eval_dir(config: ReproduceConfig, name: str) -> Path:
    return config.output_dir / "eval" / name


def _train_step(config: ReproduceConfig, name: str) -> Step:
    run, yaml_file = PAPER_RUNS[name], config.configs / f"{name}.yaml"
    out = run_dir(config, name)
    argv = _launcher(config) + ["-m", "polyp_sam_hf", "train", "--config", str(yaml_file),
                                "--data", str(data_dir(config, run.split)), "--output_dir", str(out)]
    if config.model_name_or_path:
        argv += ["--model_name_or_path", config.model_name_or_path]
    if (eval_dir(config, name) / "metrics.json").is_file() or (out / FINISHED).is_file():
        return Step(f"train {name}", argv, True, "finished")
    try:
        checkpoint = resolve_checkpoint(out, "latest")
        argv += ["--resume_from_checkpoint", "latest"]
        what = f"train {name} (continuing from {checkpoint.name})"
    except FileNotFoundError:
        what = f"train {name}"
        if out.is_dir() and any(out.iterdir()):  # stopped before its first checkpoint: start again
            argv += ["--overwrite_output_dir"]
    return Step(what, argv + list(config.train_args))


def plan(config: ReproduceConfig) -> list[Step]:
    """The commands of a reproduction, in order, with the ones already done marked.

    Raises:
        ValueError: an unknown run name, or a paper config that is missing.
    """
    unknown = [name for name in config.run if name not in PAPER_RUNS]
    if unknown:
        raise ConfigError(f"Unknown paper runs {unknown}; the paper's runs are {', '.join(PAPER_RUNS)}.")
    missing = [str(config.configs / f"{name}.yaml") for name in config.run
               if not (config.configs / f"{name}.yaml").is_file()]
    if missing:
        raise ConfigError(f"Paper configs not found: {', '.join(missing)}. Pass --configs with the folder "
                         "configs/paper of the polyp-sam-hf repository.")
    steps = []
    for split in dict.fromkeys(PAPER_RUNS[name].split for name in config.run):
        out = data_dir(config, split)
        steps.append(Step(f"prepare the {split} split", _cli("prepare", "--data_root", config.data_root,
                                                             "--output_dir", out, "--split_preset", split),
                          is_prepared(out), "prepared"))
    for name in config.run:
        steps.append(_train_step(config, name))
        out = eval_dir(config, name)
        steps.append(Step(f"evaluate {name}", _cli(
            "evaluate", "--model_name_or_path", run_dir(config, name) / "best", "--data",
            data_dir(config, PAPER_RUNS[name].split), "--output_dir", out, "--paper_run", name),
            (out / "metrics.json").is_file(), "evaluated"))
    return steps


def reproduce(config: ReproduceConfig, run: Callable[[list[str]], int] | None = None) -> Path | None:
    """Run (or with `dry_run` print) the plan, then write OUT/comparison.md.

    Args:
        run: executes one command and returns its exit status (default: a subprocess).

    Returns:
        The comparison file, or None for a dry run.

    Raises:
        StepFailedError: a step failed; the message names it, and running again resumes there.
    """
    run = run or (lambda argv: subprocess.call(argv))
    steps = plan(config)
    for index, step in enumerate(steps, 1):
        status = f"skip ({step.reason})" if step.done else ("would run" if config.dry_run else "run")
        print(f"[{index}/{len(steps)}] {step.what}: {status}\n    {shlex.join(step.argv)}", flush=True)
        if step.done or config.dry_run:
            continue
        code = run(step.argv)
        if code != 0:
            raise StepFailedError(f"Step {index} ({step.what}) failed with exit status {code}; fix the cause and run "
                               "the same command again: finished steps are skipped.")
    if config.dry_run:
        return None
    metrics = [read_metrics(eval_dir(config, name)) for name in config.run]
    path = config.output_dir / "comparison.md"
    path.write_text(comparison_markdown(metrics))
    print(f"Wrote {path}")
    return path
