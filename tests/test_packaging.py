"""The package as a user installs it: a wheel, non-editable, in a fresh environment, used from outside
the checkout. Its configs, model-card template and data files must come with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding the wheel (dependencies from this interpreter's site-packages): its bin/ folder."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-w", str(work / "dist"), "-q"], check=True, capture_output=True, cwd=work)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(work / "venv")], check=True)
    wheel = next((work / "dist").glob("polyp_sam_hf-*.whl"))
    subprocess.run([str(work / "venv" / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)
    return work / "venv" / "bin"


def _run(bin_dir: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / argv[0]), *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(cwd)})


@pytest.mark.slow
def test_an_installed_wheel_trains_reproduces_and_exports_outside_the_checkout(installed, tmp_path):
    where = _run(installed, tmp_path, "python", "-c", "import polyp_sam_hf; print(polyp_sam_hf.__file__)")
    assert str(installed.parent) in where.stdout, where  # the wheel's copy, not the checkout's
    assert _run(installed, tmp_path, "polyp-sam", "--help").returncode == 0

    data = tmp_path / "frames"
    assert _run(installed, tmp_path, "polyp-sam", "demo-data", "--output_dir", str(data), "--num_train", "16",
                "--num_test", "2").returncode == 0
    plan = _run(installed, tmp_path, "polyp-sam", "reproduce", "--data_root", str(data), "--output_dir", "out",
                "--dry_run")
    assert plan.returncode == 0, plan.stderr
    assert "table2-b-full" in plan.stdout and "would run" in plan.stdout

    # the README's config path, resolved from the package
    trained = _run(installed, tmp_path, "polyp-sam", "train", "--config", "configs/demo.yaml", "--data", str(data),
                   "--output_dir", "run", "--max_train_steps", "1", "--evaluate_test", "false")
    assert trained.returncode == 0, trained.stderr[-2000:]
    exported = _run(installed, tmp_path, "polyp-sam", "export", "--model_name_or_path", "run/best", "--repo_id", "me/polyp-sam-demo",
                    "--output_dir", "upload")
    assert exported.returncode == 0, exported.stderr[-2000:]
    card = (tmp_path / "upload" / "README.md").read_text()
    assert "me/polyp-sam-demo" in card
    assert json.loads((tmp_path / "upload" / "config.json").read_text())["model_type"]


def test_imports_go_down_the_layers_only():
    """No module imports a layer above its own, and no import cycle (scripts/architecture.py)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import architecture

    shape = architecture.analyse()
    assert shape["upward_imports"] == [] and shape["import_cycles"] == []


def test_the_architecture_page_names_every_module():
    import re

    text = (ROOT / "docs" / "architecture.md").read_text()
    table = {(row.split("|")[2].strip(" `"), name) for row in text.splitlines() if row.startswith("| ")
             for name in re.findall(r"`(\w+)`", row.split("|")[4])}
    package = ROOT / "polyp_sam_hf"
    modules = {(p.parent.name, p.stem) for p in package.glob("*/*.py") if p.name != "__init__.py"}
    assert modules <= table, sorted(modules - table)
