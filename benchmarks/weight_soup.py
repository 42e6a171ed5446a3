"""Greedy weight soup on validation frames: do averaged fine-tunes beat the best one alone?

    python benchmarks/weight_soup.py RUN_DIR [RUN_DIR ...] --config configs/mobile-sam-decoder-real.yaml \
        --data prepared/polyp-data --cache-dir runs/cache --output outputs/real-data/weight_soup.json

Every RUN_DIR is a finished `train.py` run from the same starting model (its `best/` and
`train_results.json`). The runs are taken best validation Dice first; each is added to the soup (the
uniform average of the members' weights) only if the soup's validation Dice does not fall. The
uniform average of all runs is scored too. Validation goes through the training loop's own
loaders and scorer (the embedding cache included), so "alone" reproduces each run's best
validation Dice; no test frame is read.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from safetensors.torch import load_file

from polyp_sam_hf.evaluation.scoring import validation_scores
from polyp_sam_hf.training.checkpointing import FINISHED
from polyp_sam_hf.training.config import parse_config
from polyp_sam_hf.training.loop import setup


def best_validation(run: Path) -> float:
    """The run's best validation Dice, as its train_results.json records it."""
    return json.loads((run / FINISHED).read_text())["best_dice"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--config", required=True, help="the runs' training config (its data and prompts)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--train-args", default="", help="further train.py flags the runs shared, space-separated")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    recorded = {run: best_validation(run) for run in args.runs}
    order = sorted(args.runs, key=recorded.get, reverse=True)
    with tempfile.TemporaryDirectory() as scratch:
        flags = ["--config", args.config, "--data", args.data, "--output_dir", scratch, "--model",
                 str(order[0] / "best"), "--mask_prompt", "inherit", "--evaluate_test", "false",
                 "--report_to", "none", *args.train_args.split()]
        run = setup(*parse_config(flags + (["--cache_dir", args.cache_dir] if args.cache_dir else [])))
        model = run.accelerator.unwrap_model(run.model)
        own = {k: v.clone() for k, v in model.state_dict().items()}
        weights = {r: load_file(str(r / "best" / "model.safetensors")) for r in order}

        def score(members: list[Path]) -> float:
            soup = {k: sum(weights[m][k].float() for m in members) / len(members) for k in weights[members[0]]}
            model.load_state_dict({**own, **soup})
            return validation_scores(run.model, run.val_loader, run.accelerator)["dice"]

        result = {"runs": {r.name: recorded[r] for r in order}, "alone": score(order[:1]),
                  "uniform": score(order), "tried": {}}
        soup, best = order[:1], result["alone"]
        for candidate in order[1:]:
            value = result["tried"][candidate.name] = score(soup + [candidate])
            print(f"{candidate.name}: soup of {len(soup) + 1} scores {value:.4f} (best so far {best:.4f})", flush=True)
            if value >= best:
                soup, best = soup + [candidate], value
    result.update(greedy=[r.name for r in soup], greedy_dice=best)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
