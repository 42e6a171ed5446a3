"""`polyp-sam train` and `python train.py`: parse the settings (a YAML file and flags), train,
print the test table and where the results are."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from accelerate import PartialState

from polyp_sam_hf.core.errors import REPORTED
from polyp_sam_hf.core.threads import flush_denormal_floats
from polyp_sam_hf.training.config import parse_config
from polyp_sam_hf.training.loop import train


def main(argv: list[str] | None = None) -> int:
    """Command line: parse the config, train, print the test table."""
    flush_denormal_floats()  # before any work starts PyTorch's thread pool (core/threads.py says why)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        results = train(*parse_config(argv))
    except KeyboardInterrupt:
        return 130
    except REPORTED as err:  # bad settings, data, model or path: the message says what to do; a bug keeps its traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    if PartialState().is_main_process:
        print(f"\nBest validation Dice {results['best_dice']:.4f} at step {results['best_step']}.")
        if results.get("test"):
            print(results["test"]["table"])
        print(where_results_are(Path(results["output_dir"])))
    return 0


def where_results_are(output_dir: Path) -> str:
    """The run's last line: the folder and the files a user looks for, those that exist."""
    files = [("best/", "the best validation weights, a plain SamModel folder"),
             ("training_curves.png", "loss and validation Dice"), ("metrics.jsonl", "every validation"),
             ("test_results.json", "the test table above")]
    present = [f"{name} ({what})" for name, what in files if (output_dir / name.rstrip("/")).exists()]
    return f"Results in {output_dir}: " + "; ".join(present) + "."
