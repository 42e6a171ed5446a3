"""The benchmarks: each script has its place, every kept benchmark runs in CI in its quick mode (through
`run_all.py --quick`), and the quick run reproduces the committed speed-ups."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
HELPERS = {"harness", "run_all", "profiling"}  # the harness, its runner, and the FLOP counter two benchmarks use


def _run_all_list() -> dict:
    tree = ast.parse((BENCHMARKS / "run_all.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "BENCHMARKS")
    return ast.literal_eval(node.value)


def test_every_benchmark_is_declared_once_and_run_by_run_all():
    """A script in benchmarks/ is a benchmark of the harness that run_all runs, or one of its helpers;
    drivers of real-data work live in scripts/."""
    scripts = {p.stem for p in BENCHMARKS.glob("*.py")} - HELPERS
    for name in scripts:
        text = (BENCHMARKS / f"{name}.py").read_text()
        assert "BENCHMARK = Benchmark(" in text and "run_benchmark(BENCHMARK)" in text, name
    assert set(_run_all_list()) == scripts


def _benchmark(name: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{name}.json"
    subprocess.run([sys.executable, f"benchmarks/{name}.py", *args, "--output_file", str(out)], cwd=ROOT, check=True,
                   capture_output=True)
    return json.loads(out.read_text())


def test_a_record_says_what_measured_it(tmp_path):
    record = _benchmark("step_profile", "--quick", tmp_path=tmp_path)
    assert set(record) == {"benchmark", "command", "machine", "torch", "date", "result"}
    assert record["command"].startswith("python benchmarks/step_profile.py --quick") and "cores" in record["machine"]
    result = record["result"]
    assert 0 < result["busy_s"] <= result["step_wall_s"] * 1.01  # self times never add up to more than the step
    assert "aten::" in result["report"]  # the operator table follows


def test_the_loops_clock_ticks_once_per_optimiser_step(tmp_path):
    """train_loop times train.py's loop by the loss each optimiser step counts: one tick a step."""
    result = _benchmark("train_loop", "--quick", tmp_path=tmp_path)["result"]
    assert (result["optimiser_steps"], result["timed_steps"]) == (4 + 1, 4)
    assert result["loop_images_per_s"] > 0 and result["bare_images_per_s"] > 0


@pytest.mark.slow
def test_gpu_script_cpu_check_writes_every_row(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    subprocess.run(["bash", "benchmarks/gpu.sh", "--cpu_check"], cwd=ROOT, env=env, check=True, capture_output=True)
    eager = json.loads((tmp_path / "gpu_check.json").read_text())["result"]["results"]
    assert [(r["variant"], r["compiled"]) for r in eager] == [("decoder-cached", False), ("full", False)]
    compiled = json.loads((tmp_path / "gpu_check_compiled.json").read_text())["result"]["results"]
    assert [r["compiled"] for r in compiled] == [False, True]
    for row in eager + compiled:
        assert row["images_per_s"] > 0 and row["gflop_per_image"] > 0 and "error" not in row
    # the full step does far more work per image than a decoder step from cached embeddings
    assert eager[1]["gflop_per_image"] > 10 * eager[0]["gflop_per_image"]


@pytest.mark.slow
def test_run_all_quick_runs_every_benchmark_and_reproduces_the_speedups(tmp_path):
    """Every kept benchmark in its quick mode, and the two ratios the library's design rests on: the
    input pipeline clearly faster than the per-sample SamProcessor, the cached epoch at least 20x
    faster than recomputing ViT-B's embeddings.

    The input pipeline's target, 3x, is the benchmark's (benchmarks/results.json: 3.74 on a quiet
    2-core machine); it moves with the machine's load (2.74 in one CI run, whose loader alone ran as
    fast as the quiet run's), so the floor here is 2x: below every run measured so far, far above
    the 1x of a pipeline that decodes and resizes every frame again as the per-sample processor does."""
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "benchmarks/run_all.py", "--quick", "--output_file", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["benchmarks"]) == set(_run_all_list())
    for name, record in results["benchmarks"].items():
        assert re.match(rf"python benchmarks/{name}\.py --quick$", record["command"]) and record["result"], name
    ratios = {name: results["benchmarks"][name]["result"] for name in ("input_pipeline", "embedding_cache")}
    assert ratios["input_pipeline"]["input_pipeline_speedup"] >= 2, ratios
    assert ratios["embedding_cache"]["embedding_cache_speedup"] >= 20, ratios
