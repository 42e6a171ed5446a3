"""The paper's scale on real frames: Kvasir-SEG and CVC-ClinicDB (1,612 frames, PraNet's split: 900 + 550
train, 100 + 62 test) and all 380 frames of CVC-ColonDB, the paper's held-out test, through the
library's own commands: zero-shot and fine-tuned rows, and how much the frames settle.

    python scripts/real_data.py                       # hours on a 2-core CPU, resumable
    python scripts/real_data.py --steps prepare,zero-shot
    python scripts/real_data.py --steps train,evaluate,bootstrap --config configs/mobile-sam-lora-real.yaml \
        --run_name mobile-sam-lora                    # the second stage of the published recipe
    REAL_DATA=/path/to/polyp-data python scripts/real_data.py

Each step is a real command (`polyp-sam prepare`, `polyp-sam convert`, `train.py`,
`polyp-sam evaluate`, `polyp-sam bootstrap`, `polyp-sam compare`) in its own process; its wall time
and peak resident memory are recorded in OUT/steps.json as soon as it ends, and a step whose outputs
exist is not run again, so an interrupted run continues where it stopped (the embedding cache
resumes inside its build too, and lends the rows of frames it holds to a cache of other frames).
CVC-ColonDB is a test set only: no step trains or chooses anything on it. Results: OUT/steps.json,
each evaluation's metrics.json and per_image.csv, OUT/bootstrap/*.json; docs/results-real-data.md is
written from them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("REAL_DATA", REPO.parent / "shared" / "polyp-data"))

# a child's peak RSS: the command runs in a process that reports its own maximum at exit
MEASURED = """
import atexit, json, resource, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(
    {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20})))
args = sys.argv[2:]
if args[0] == "-m":  # -m MODULE ARGS...
    sys.argv = args[1:]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
else:  # SCRIPT.py ARGS...
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
"""


class Steps:
    """OUT/steps.json: one record per finished step (seconds, peak RSS, the command)."""

    def __init__(self, out: Path) -> None:
        self.path = out / "steps.json"
        self.done = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def run(self, name: str, argv: list[str], finished: Path) -> dict:
        """Run `argv` (a module or script and its arguments) unless `finished` exists."""
        if finished.exists():
            record = self.done.get(name, {"seconds": None, "command": " ".join(argv), "note": "found, made outside "
                                          "this script (not timed here)"})
            print(f"[{name}] done earlier: {finished}")
            return record
        rss = self.path.parent / f".{name}.rss.json"
        print(f"[{name}] {' '.join(argv)}", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", MEASURED, str(rss), *argv], check=True, cwd=REPO)
        record = {"seconds": round(time.perf_counter() - start, 1), "command": " ".join(argv),
                  **json.loads(rss.read_text())}
        # merged with what other runs of this script (say, two recipes at once) recorded meanwhile
        self.done = {**(json.loads(self.path.read_text()) if self.path.is_file() else {}), name: record}
        self.path.write_text(json.dumps(self.done, indent=1) + "\n")
        print(f"[{name}] {record['seconds']:.0f} s, peak RSS {record['peak_rss_gib']:.2f} GiB", flush=True)
        return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "real-data")
    parser.add_argument("--steps", default="prepare,convert,zero-shot,train,evaluate,unseen,bootstrap,compare",
                        help="comma-separated: prepare, convert, zero-shot, train, evaluate, unseen (the fine-tuned "
                             "model on the sample frames of datasets it never trained on), bootstrap (the run against "
                             "zero-shot, per dataset and per video study, and against the ellipse in its boxes), "
                             "clicks (zero-shot and the --bootstrap_against models with the same clicker), "
                             "compare (Tables 2 and 3)")
    parser.add_argument("--samples", type=Path, default=REPO.parent / "shared" / "polyp-samples" / "pranet",
                        help="a PraNet-layout root whose CVC-ColonDB, ETIS and CVC-300 frames the model never saw")
    parser.add_argument("--config", default="configs/mobile-sam-decoder-real.yaml", help="the fine-tune's recipe")
    parser.add_argument("--prepared", type=Path, default=REPO / "prepared" / "polyp-data",
                        help="the prepared DatasetDict (prepare writes it with --split_preset SPLIT)")
    parser.add_argument("--split_preset", default="paper", help="prepare's split: paper, or paper-sequences")
    parser.add_argument("--tag", default="", help="appended to the zero-shot evaluations' names (another split)")
    parser.add_argument("--run_name", default="mobile-sam-decoder", help="the fine-tuned run's folder name")
    parser.add_argument("--train_args", default="", help="further train.py flags, space-separated")
    parser.add_argument("--clicks", type=int, default=0,
                        help="the run's evaluation also runs the evaluation clicker this many times (and the clicks "
                             "step on the zero-shot and --bootstrap_against models)")
    parser.add_argument("--clicks_data", type=Path, help="the prepared frames of the clicks step (default --prepared)")
    parser.add_argument("--bootstrap_against", nargs="*", default=[], metavar="EVAL",
                        help="further evaluations (names under OUT/eval) to set the run against, e.g. its first stage")
    parser.add_argument("--cache_dir", type=Path, default=REPO / "runs" / "cache",
                        help="the embedding cache (built by the first fine-tune, reused by the next)")
    args = parser.parse_args(argv)
    if not args.data_root.is_dir():
        sys.exit(f"No real data at {args.data_root}: set REAL_DATA or --data_root (docs/results-real-data.md).")
    wanted = set(args.steps.split(","))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    steps = Steps(out)
    data = args.prepared
    models = {"mobile-sam": REPO / "models" / "mobile-sam", "lite-medsam": REPO / "models" / "lite-medsam"}
    cli = ["-m", "polyp_sam_hf"]

    if "prepare" in wanted:
        steps.run("prepare", [*cli, "prepare", "--data_root", str(args.data_root), "--output_dir", str(data),
                              "--split_preset", args.split_preset], data / "dataset_dict.json")
    if "convert" in wanted:
        for arch, folder in models.items():
            steps.run(f"convert-{arch}", [*cli, "convert", "--arch", arch, "--output_dir", str(folder)],
                      folder / "config.json")

    def evaluate(name: str, model: Path, clicks: int = 0, where: str = "eval", frames: Path = data) -> None:
        target = out / where / name
        steps.run(f"evaluate-{where}-{name}", [*cli, "evaluate", "--model_name_or_path", str(model), "--data",
                                               str(frames), "--output_dir", str(target), "--prompt_mode",
                                               "box,box-per-polyp", "--device", "cpu", "--clicks", str(clicks)],
                  target / "metrics.json")

    if "zero-shot" in wanted:
        for arch, folder in models.items():
            evaluate(f"{arch}-zero-shot{args.tag}", folder)
    run = out / "runs" / args.run_name
    if "train" in wanted:
        steps.run(f"train-{args.run_name}", ["train.py", "--config", args.config, "--data", str(data),
                                             "--output_dir", str(run), "--evaluate_test", "false",
                                             "--cache_dir", str(args.cache_dir),
                                             *args.train_args.split()], run / "train_results.json")
    if "evaluate" in wanted:
        evaluate(args.run_name, run / "best", args.clicks)
    if "clicks" in wanted:  # the same clicker on zero-shot MobileSAM and the box-only models, on the clicks' frames
        for name, model in ((f"mobile-sam-zero-shot{args.tag}", models["mobile-sam"]),
                            *((other, out / "runs" / other / "best") for other in args.bootstrap_against)):
            evaluate(name, model, args.clicks, "eval-clicks", args.clicks_data or data)
    if "unseen" in wanted and args.samples.is_dir():
        # prepared on its own (test-only: its test folders all test), so evaluate reads this split as given
        unseen = out / "data-unseen"
        steps.run("prepare-unseen", [*cli, "prepare", "--data_root", str(args.samples), "--output_dir", str(unseen),
                                     "--split_preset", "test-only"], unseen / "dataset_dict.json")
        for name, model in ((f"{args.run_name}-unseen", run / "best"), ("mobile-sam-zero-shot-unseen",
                                                                         models["mobile-sam"])):
            target = out / "eval-unseen" / name
            steps.run(f"evaluate-{name}", [*cli, "evaluate", "--model_name_or_path", str(model), "--data",
                                           str(unseen), "--output_dir", str(target), "--prompt_mode",
                                           "box,box-per-polyp", "--device", "cpu"], target / "metrics.json")
    if "bootstrap" in wanted:
        ours, zero_shot = out / "eval" / args.run_name, out / "eval" / f"mobile-sam-zero-shot{args.tag}"
        # (name, A, B, further flags): B - A with its 95% interval over the test frames, paired
        for name, a, b, flags in ((f"{args.run_name}-vs-zero-shot", zero_shot, ours, []),
                                  (f"{args.run_name}-vs-zero-shot-by-study", zero_shot, ours,
                                   ["--group_by", "sequence"]),
                                  (f"{args.run_name}-vs-ellipse", ours, ours, ["--method_a", "ellipse"]),
                                  *((f"{args.run_name}-vs-{other}", out / "eval" / other, ours, [])
                                    for other in args.bootstrap_against)):
            target = out / "bootstrap" / f"{name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            steps.run(f"bootstrap-{name}", [*cli, "bootstrap", str(a), str(b), *flags, "--output_file", str(target)],
                      target)
    if "compare" in wanted:
        found = sorted((out / "eval").glob("*/metrics.json"))
        for table in (2, 3):
            target = out / f"comparison-table{table}.md"
            steps.run(f"compare-table{table}", [*cli, "compare", *map(str, found), "--table", str(table),
                                                "--output_file", str(target)], target)
    print(json.dumps(steps.done, indent=1))


if __name__ == "__main__":
    main()
