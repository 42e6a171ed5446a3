"""The GPU benchmark scripts run end to end on the CPU with the tiny model (their `--cpu-check`)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_script_cpu_check_writes_every_row(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    subprocess.run(["bash", "benchmarks/gpu.sh", "--cpu-check"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    eager = json.loads((tmp_path / "gpu_check.json").read_text())["results"]
    assert [(r["variant"], r["compiled"]) for r in eager] == [("decoder-cached", False), ("full", False)]
    compiled = json.loads((tmp_path / "gpu_check_compiled.json").read_text())["results"]
    assert [r["compiled"] for r in compiled] == [False, True]
    for row in eager + compiled:
        assert row["images_per_s"] > 0 and row["gflop_per_image"] > 0 and "error" not in row
    # the full step does far more work per image than a decoder step from cached embeddings
    assert eager[1]["gflop_per_image"] > 10 * eager[0]["gflop_per_image"]


def test_step_profile_reports_the_busy_share_of_a_step(tmp_path):
    report = tmp_path / "profile.txt"
    subprocess.run([sys.executable, "step_profile.py", "--model", "tiny-sam", "--batch", "2", "--steps", "2",
                    "--warmup", "1", "--rows", "5", "--output", str(report)],
                   cwd=ROOT / "benchmarks", check=True, capture_output=True)
    text = report.read_text()
    wall = float(re.search(r"step wall time \(under the profiler\): ([\d.]+) s", text).group(1))
    busy, share = re.search(r"summed operator self time per step: ([\d.]+) s \((\d+)% of the step\)", text).groups()
    assert 0 < float(busy) <= wall * 1.01  # self times never add up to more than the step
    assert abs(int(share) - 100 * float(busy) / wall) <= 1
    assert "aten::" in text  # the operator table follows


def test_train_loop_benchmark_times_the_loop_beside_the_bare_step(tmp_path):
    out = tmp_path / "loop.json"
    subprocess.run([sys.executable, "train_loop.py", "--steps", "2", "--warmup", "1", "--batch", "2",
                    "--output", str(out)], cwd=ROOT / "benchmarks", check=True, capture_output=True)
    result = json.loads(out.read_text())
    assert result["loop_images_per_s"] > 0 and result["bare_images_per_s"] > 0
    assert result["loop_share_of_bare"] == pytest.approx(
        result["loop_images_per_s"] / result["bare_images_per_s"], rel=0.01)
