"""One harness for every benchmark: its flags, its quick mode, the record it writes, best-of timing.

A benchmark module defines what it measures and declares it once:

    BENCHMARK = Benchmark(__doc__, add_arguments, measure, quick={"images": 16})
    if __name__ == "__main__":
        run_benchmark(BENCHMARK)

and gets `--quick` (the sizes `quick` names: seconds to a few minutes, what `run_all.py --quick`
and CI run, so no benchmark rots) and `--output_file`. Flags are snake_case, as the library's
commands. Every record has one layout: the benchmark, the command that gives it, the machine,
torch, the date, and the result.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from polyp_sam_hf.core.threads import available_cores, flush_denormal_floats

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: its module docstring (the first line is its description), its own flags, what it
    measures (parsed flags -> result dict) and the flag values of its quick mode."""

    doc: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    measure: Callable[[argparse.Namespace], dict]
    quick: dict = field(default_factory=dict)

    @property
    def description(self) -> str:
        return self.doc.strip().splitlines()[0]


def machine() -> str:
    """The machine a record was measured on, in words."""
    words = f"{platform.machine()} CPU, {available_cores()} cores, {torch.get_num_threads()} threads"
    return words + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")


def parse(benchmark: Benchmark, argv: list[str], prog: str) -> argparse.Namespace:
    """The benchmark's flags; `--quick` sets the quick sizes (flags given beside it still win)."""
    parser = argparse.ArgumentParser(prog=prog, description=benchmark.description, allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help=f"the quick sizes, {benchmark.quick or 'as given'}")
    parser.add_argument("--output_file", type=Path, help="also write the record here as JSON")
    benchmark.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        given = {a.split("=")[0].lstrip("-") for a in argv if a.startswith("--")}
        for key, value in benchmark.quick.items():
            if key not in given:
                setattr(args, key, value)
    return args


def record(name: str, argv: list[str], result: dict, where: str | None = None) -> dict:
    """The one layout of a benchmark's record (`where`: the machine as it was when the measuring began)."""
    return {"benchmark": name, "command": " ".join([f"python benchmarks/{name}.py", *argv]),
            "machine": where or machine(),
            "torch": torch.__version__, "date": datetime.date.today().isoformat(), "result": result}


def measure_benchmark(benchmark: Benchmark, name: str, argv: list[str]) -> dict:
    """Parse `argv`, measure, and return the record (for `run_all.py`)."""
    flush_denormal_floats()  # as the library's entry points do (core/threads.py)
    args = parse(benchmark, argv, f"benchmarks/{name}.py")
    threads, where = torch.get_num_threads(), machine()
    try:
        return record(name, argv, benchmark.measure(args), where)
    finally:  # a benchmark that trains a small model leaves one thread set (core/threads.py): not for the next
        torch.set_num_threads(threads)


def run_benchmark(benchmark: Benchmark, argv: list[str] | None = None) -> dict:
    """The benchmark's command line: measure, print the record as JSON, write it to `--output_file`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    name = Path(sys.modules[benchmark.measure.__module__].__file__).stem
    result = measure_benchmark(benchmark, name, argv)
    text = json.dumps(result, indent=1)
    print(text)
    output = next((Path(argv[i + 1]) for i, a in enumerate(argv[:-1]) if a == "--output_file"), None)
    if output is not None:
        output.write_text(text + "\n")
    return result


def best_of(ways: dict[str, Callable[[], object]], rounds: int = 3) -> dict[str, float]:
    """Seconds of each way's best run: the ways take turns for `rounds` rounds, so a busy moment on
    the machine does not decide a ratio."""
    best = {name: math.inf for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            best[name] = min(best[name], time.perf_counter() - start)
    return best
