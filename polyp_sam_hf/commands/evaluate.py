"""`polyp-sam evaluate`: a model scored per dataset beside the box-only baselines, as the paper's
tables report it (`evaluation.evaluate.EvaluateConfig` holds the flags)."""

from __future__ import annotations

from pathlib import Path

from polyp_sam_hf.evaluation.evaluate import EvaluateConfig, run_evaluation

HELP = "score a model per dataset beside box-only baselines"
EvaluateArguments = EvaluateConfig


def run(args: EvaluateConfig) -> int:
    metrics = run_evaluation(args)
    output = Path(args.output)
    print((output / "results.md").read_text())
    primary = metrics["primary"]
    jitter = f", box jitter {primary['box_jitter']}" if primary["box_jitter"] else ""
    synthetic = ", synthetic frames" if metrics["settings"].get("synthetic") else ""
    print(f"{metrics['run']['label']}, {primary['prompt_mode']} prompt{jitter}{synthetic}: mean Dice "
          f"{metrics['all']['dice']:.4f}, mIoU {metrics['all']['miou']:.4f} over {metrics['all']['n']} frames "
          f"(the headline row of {output / 'results.md'})")
    return 0
