"""How far two evaluations of the same test frames differ, beyond the luck of which frames were drawn.

    python benchmarks/paired_bootstrap.py outputs/real-data/eval/A outputs/real-data/eval/B

Reads each evaluation's `per_image.csv` (written by `polyp-sam evaluate`), pairs the frames by
dataset and image id, and resamples the frames with replacement: per dataset it prints the mean
Dice of A and B, the mean of B - A with its 95% interval, how many frames B scores better and
worse, and the 95% interval of B's own mean. A difference whose interval holds 0 is not settled by
these frames. Frames with an empty mask are left out, as every mean of `evaluate` leaves them out.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path


def read_scores(folder: Path, method: str, prompt_mode: str) -> dict[tuple[str, str], float]:
    """{(dataset, image id): Dice} of one method and prompt mode, at no box jitter."""
    path = folder / "per_image.csv"
    if not path.is_file():
        sys.exit(f"No {path}: give the folder `polyp-sam evaluate --output` wrote.")
    scores = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if (row["method"] == method and row["prompt_mode"] == prompt_mode and float(row["box_jitter"]) == 0
                    and row["empty_mask"] != "True"):
                scores[row["source"], row["image_id"]] = float(row["dice"])
    if not scores:
        sys.exit(f"{path} has no rows of method {method!r} with prompt mode {prompt_mode!r}.")
    return scores


def interval(values: list[float], resamples: int, rng: random.Random) -> tuple[float, float]:
    """95% percentile interval of the mean of `values` over `resamples` draws with replacement."""
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))]


def compare(a: dict, b: dict, resamples: int = 10_000, seed: int = 0) -> dict:
    """Per dataset (and `all`): the means, B - A with its interval, and B's own interval."""
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())[:5]
        sys.exit(f"The two evaluations scored different frames (for example {only}): evaluate both on one dataset.")
    rng = random.Random(seed)
    out = {}
    for source in [*sorted({s for s, _ in a}), "all"]:
        keys = sorted(k for k in a if source in ("all", k[0]))
        diff = [b[k] - a[k] for k in keys]
        out[source] = {
            "n": len(keys),
            "dice_a": round(sum(a[k] for k in keys) / len(keys), 4),
            "dice_b": round(sum(b[k] for k in keys) / len(keys), 4),
            "difference": round(sum(diff) / len(diff), 4),
            "difference_95": [round(x, 4) for x in interval(diff, resamples, rng)],
            "b_better": sum(d > 0 for d in diff),
            "b_worse": sum(d < 0 for d in diff),
            "dice_b_95": [round(x, 4) for x in interval([b[k] for k in keys], resamples, rng)],
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="an evaluation folder (the reference)")
    parser.add_argument("b", type=Path, help="an evaluation folder of the same frames")
    parser.add_argument("--method", default="model", help="the per_image.csv method: model, box or ellipse")
    parser.add_argument("--prompt-mode", default="single", help="single (the paper's protocol) or per-component")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="also write the result here as JSON")
    args = parser.parse_args(argv)
    result = compare(read_scores(args.a, args.method, args.prompt_mode),
                     read_scores(args.b, args.method, args.prompt_mode), args.resamples, args.seed)
    print(f"B = {args.b.name}, A = {args.a.name} ({args.method}, {args.prompt_mode} box)")
    print("| dataset | frames | A | B | B - A (95%) | B better / worse | B (95%) |")
    print("|---|---|---|---|---|---|---|")
    for source, r in result.items():
        print(f"| {source} | {r['n']} | {r['dice_a']:.4f} | {r['dice_b']:.4f} | {r['difference']:+.4f} "
              f"({r['difference_95'][0]:+.4f} to {r['difference_95'][1]:+.4f}) | {r['b_better']} / {r['b_worse']} "
              f"| {r['dice_b_95'][0]:.4f} to {r['dice_b_95'][1]:.4f} |")
    if args.output:
        args.output.write_text(json.dumps({"a": args.a.name, "b": args.b.name, "method": args.method,
                                           "prompt_mode": args.prompt_mode, "resamples": args.resamples,
                                           "seed": args.seed, "datasets": result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
