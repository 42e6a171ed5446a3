"""CPU thread settings: each process its share of the cores; the user's own settings win."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from polyp_sam_hf.core.threads import available_cores, set_cpu_threads


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("POLYP_SAM_THREADS", raising=False)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("processes", [1, 2, 64])
def test_each_process_gets_its_share_of_the_cores(processes, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))  # an 8-core machine
    assert set_cpu_threads(processes) == max(1, 8 // processes)
    assert torch.get_num_threads() == max(1, 8 // processes)


@pytest.mark.parametrize("env", [{"OMP_NUM_THREADS": "3"}, {"POLYP_SAM_THREADS": "torch"}])
def test_the_users_setting_or_pytorchs_defaults_when_asked(env, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    torch.set_num_threads(1)
    assert set_cpu_threads(1) is None and torch.get_num_threads() == 1


def test_an_unknown_policy_is_an_error(monkeypatch):
    monkeypatch.setenv("POLYP_SAM_THREADS", "many")
    with pytest.raises(ValueError, match="auto.*torch"):
        set_cpu_threads(1)


def test_entry_points_ask_openmp_to_wait_passively_before_pytorch_loads():
    """The OpenMP runtime reads OMP_WAIT_POLICY when PyTorch loads it, so the entry point sets it first:
    the command line has set it, and PyTorch is not loaded yet (only the chosen command loads it)."""
    code = ("import os, sys; import polyp_sam_hf.commands.cli; "
            "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["PASSIVE", "False"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "POLYP_SAM_THREADS": "torch"}).stdout
    assert out.split()[0] == "None"
    assert available_cores() >= 1


def test_a_small_model_runs_on_one_thread(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert set_cpu_threads(1, parameters=150_000) == 1  # tiny-sam: operators too small to split
    assert set_cpu_threads(1, parameters=10_000_000) == 8


# A fresh process runs the command line's entry (here `--help`, which loads nothing), then a product
# whose every element is a denormal, large enough to be split over PyTorch's thread pool: each
# thread's own floating-point mode decides its elements.
_DENORMALS_AFTER_ENTRY = r"""
import sys, torch
from polyp_sam_hf.commands.cli import main
main(["--help"])
torch.set_num_threads(2)
product = torch.full((4_000_000,), 1e-30) * 1e-10   # 1e-40: a float32 denormal
print(int((product != 0).sum()))
"""


@pytest.mark.parametrize("policy, flushed", [("auto", True), ("torch", False)])
def test_the_command_line_flushes_denormals_in_every_thread(policy, flushed):
    """SAM ViT on a padded frame makes denormals, which the CPU computes on about 6x slower
    (core/threads.py); the entry points flush them to zero, in the pool's threads too."""
    env = {**os.environ, "POLYP_SAM_THREADS": policy}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run([sys.executable, "-c", _DENORMALS_AFTER_ENTRY], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    nonzero = int(done.stdout.strip().splitlines()[-1])
    assert (nonzero == 0) == flushed, nonzero
