"""The README's first command: the embedded default trains offline and beats the box-only baseline, and what it
trains publishes (`polyp-sam export`, the README's next step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # real processes end to end: minutes, run by CI


def test_demo_config_beats_the_ellipse_baseline(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "train.py", "--config", "configs/demo.yaml",
           "--data", str(tmp_path / "data"), "--output_dir", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert (tmp_path / "data" / "TrainDataset" / "images").is_dir()  # it drew its own data
    report = json.loads((out / "test_results.json").read_text())["sources"]
    n = sum(e["n"] for e in report.values())
    model = sum(e["dice"] * e["n"] for e in report.values()) / n
    ellipse = sum(e["ellipse_dice"] * e["n"] for e in report.values()) / n
    assert model >= ellipse + 0.03, result.stdout[-2000:]
    assert "ellipse from the same boxes" in result.stdout and "margin over the ellipse (one box)" in result.stdout
    assert (out / "best" / "model.safetensors").is_file() and (out / "training_curves.png").is_file()
    # the README's next step: publish what the demo trained (it once stopped at the export's own check)
    export = subprocess.run([sys.executable, "-m", "polyp_sam_hf", "export", "--model_name_or_path", str(out / "best"),
                             "--repo_id", "ORG/NAME", "--output_dir", str(tmp_path / "upload")],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert export.returncode == 0, export.stderr[-3000:]
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in (tmp_path / "upload").iterdir()}
