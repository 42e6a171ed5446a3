"""Two real Accelerate processes on the CPU (gloo) stand in for two GPUs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # real processes end to end: minutes, run by CI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("strategy", ["full", "decoder"])  # decoder shards the embedding cache
def test_two_process_demo_run(tmp_path, strategy):
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        "train.py", "--config", "configs/demo.yaml", "--data", str(tmp_path / "data"),
        "--output_dir", str(out), "--max_train_steps", "3", "--eval_steps", "3", "--evaluate_test", "false",
        "--strategy", strategy, "--cache_dir", str(tmp_path / "cache"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "2 processes x batch 4 x accumulation 1 = 8 per step" in log
    checksums = dict(re.findall(r"rank (\d) done, weight checksum (\S+)", log))
    assert set(checksums) == {"0", "1"}, log[-3000:]  # both ranks trained
    assert checksums["0"] == checksums["1"]  # and hold the same weights
    assert "Weights identical on all 2 processes" in log
    # one checkpoint, written once: no leftovers of a second writer
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000003"]
    assert len([line for line in log.splitlines() if "Saved checkpoint" in line]) == 1
    assert (out / "best" / "model.safetensors").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    if strategy == "decoder":
        (cache,) = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]  # and its lock file
        assert (cache / "complete").is_file() and not list((tmp_path / "cache").glob("*.building"))
        assert len(re.findall(r"Cached \d+ frames", log)) == 1


INTERACTIVE = ["--interactive_rounds", "3", "--point_share", "0.5"]


@pytest.mark.parametrize("extra", [[], INTERACTIVE, [*INTERACTIVE, "--strategy", "decoder"]],
                         ids=["box", "correction rounds, full", "correction rounds, decoder from cached embeddings"])
def test_two_processes_of_batch_4_equal_one_of_batch_8(tmp_path, extra):
    """DDP: 2 processes x batch 4 take the step 1 process x batch 8 takes (same frames, gradients
    averaged across processes), and keep the same weight average; with correction rounds too (the
    clicks are drawn per frame, so each process draws its frames' clicks)."""
    common = ["--config", "configs/demo.yaml", "--data", str(tmp_path / "data"), "--max_train_steps", "2",
              "--eval_steps", "2", "--evaluate_test", "false", "--effective_batch_size", "8",
              "--box_jitter", "0", "--augment_flips", "", "--report_to", "none", "--ema_decay", "0.9",
              "--cache_dir", str(tmp_path / "cache"), *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "--main_process_port", str(_free_port()), "train.py", *common, "--output_dir",
                          str(tmp_path / "two"), "--per_device_train_batch_size", "4"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    one = subprocess.run([sys.executable, "train.py", *common, "--output_dir", str(tmp_path / "one"),
                          "--per_device_train_batch_size", "8"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert one.returncode == 0, (one.stdout + one.stderr)[-3000:]
    import torch
    from safetensors.torch import load_file

    # the step's weights, and the weight average (--ema_decay) that best/ keeps
    for saved in ("checkpoints/step-0000002/model.safetensors", "best/model.safetensors"):
        a = load_file(str(tmp_path / "two" / saved))
        b = load_file(str(tmp_path / "one" / saved))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=f"{saved}: {key}")
