"""`polyp-sam evaluate`: a model scored per dataset beside the box-only baselines, as the paper's
tables report it (`evaluation.evaluate.EvaluateConfig` holds the flags)."""

from __future__ import annotations

from pathlib import Path

from polyp_sam_hf.evaluation.evaluate import EvaluateConfig, run_evaluation

EvaluateArguments = EvaluateConfig


def run(args: EvaluateConfig) -> int:
    record = run_evaluation(args)
    output = Path(args.output)
    print((output / "results.md").read_text())
    jitter = f", box jitter {record.primary_jitter}" if record.primary_jitter else ""
    synthetic = ", synthetic frames" if record.synthetic else ""
    print(f"{record.run.label}, {record.primary_mode} prompt{jitter}{synthetic}: mean Dice {record.all.dice:.4f}, "
          f"mIoU {record.all.miou:.4f} over {record.all.n} frames (the headline row of {output / 'results.md'})")
    return 0
