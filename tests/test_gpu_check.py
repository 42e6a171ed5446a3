"""scripts/gpu_check.sh, the README's commands end to end on a device, runs on the CPU (`--cpu_check`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from transformers import AutoModel

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["models", "prepare", "train-decoder", "resume", "train-full", "train-lora", "train-vit-full", "evaluate",
            "predict", "export"]


def _run(tmp_path, **env):
    return subprocess.run(["bash", "scripts/gpu_check.sh", "--cpu_check"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OUT": str(tmp_path), **env})


@pytest.mark.slow
def test_cpu_check_runs_every_command_and_what_they_write_loads(tmp_path):
    demo = tmp_path / "frames"
    from polyp_sam_hf.data.synthetic import write_demo_data

    write_demo_data(demo, 16, 2)  # the script's own commands read it as a user's data root
    result = _run(tmp_path, DATA_ROOT=str(demo))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+exit (\d+)", result.stdout, re.M)}
    assert lines == {name: 0 for name in COMMANDS}
    assert "10 commands, 0 failed" in result.stdout
    # the decoder run stopped half-way and the resume continued it from its checkpoint
    assert json.loads((tmp_path / "decoder" / "train_results.json").read_text())["steps"] == 2
    assert "Resum" in (tmp_path / "logs" / "resume.log").read_text()
    assert AutoModel.from_pretrained(tmp_path / "upload", trust_remote_code=True) is not None
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["settings"]


def test_a_failing_command_fails_the_script_and_says_which(tmp_path):
    result = _run(tmp_path, PYTHON="false")  # every command exits 1 at once
    assert result.returncode == 1
    assert re.search(r"^prepare\s+exit 1", result.stdout, re.M)
    assert re.search(r"commands, \d+ failed", result.stdout) and " 0 failed" not in result.stdout
