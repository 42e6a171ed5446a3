"""How every benchmark hands over its figures: indented JSON on stdout, and in a file when asked."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path


def emit(result: dict, output: Path | None) -> None:
    """Print `result` as JSON and, with `output`, write the same text there."""
    text = json.dumps(result, indent=1)
    print(text)
    if output:
        output.write_text(text + "\n")


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
