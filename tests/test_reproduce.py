"""`scripts/reproduce_paper.sh` end to end: real `prepare`, `accelerate launch` training and `evaluate`
processes for all six paper runs, with a micro model on generated frames standing in for SAM and
the real datasets; then every cell of comparison.md is traced back to its run and its published row."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import REPO_ROOT

from polyp_sam_hf.data.synthetic import write_demo_data
from polyp_sam_hf.evaluation.published import PAPER_RUNS, TABLE_TITLES, table_rows

pytestmark = pytest.mark.slow  # real processes end to end: minutes, run by CI


SCRIPT = REPO_ROOT / "scripts" / "reproduce_paper.sh"
SOURCE_ORDER = ("kvasir", "cvc-clinicdb", "cvc-colondb", "etis", "cvc-300")
TRAIN_FLAGS = ["--max_train_steps", "1", "--per_device_train_batch_size", "2", "--effective_batch_size", "2",
               "--mixed_precision", "no", "--pixel_cache", "false", "--report_to", "none",
               "--max_train_samples", "4", "--max_eval_samples", "2", "--evaluate_test", "false"]


def _script(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, test_model_dirs):
    root = tmp_path_factory.mktemp("reproduce")
    data = write_demo_data(root / "data", num_train=16, num_test=2, seed=3)
    model = test_model_dirs["micro-sam-test"]
    done = _script("--data_root", data, "--output_dir", root / "out", "--model_name_or_path", model, "--", *TRAIN_FLAGS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return data, root / "out", model


def _sections(text: str) -> dict[int, str]:
    parts = re.split(r"^## ", text, flags=re.M)
    return {table: next(p for p in parts if p.startswith(title)) for table, title in TABLE_TITLES.items()}


def _rows(section: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[3:]
    return header[3:], rows


def test_every_cell_comes_from_its_run_and_its_published_row(reproduced):
    _, out, model = reproduced
    sections = _sections((out / "comparison.md").read_text())
    for table, section in sections.items():
        columns, rows = _rows(section)
        # generated frames: every column is headed synthetic
        sources = [s for s in SOURCE_ORDER if any(f"{_display(s)} (synthetic) Dice" == c for c in columns)]
        assert sources and columns == [f"{_display(s)} (synthetic) {m}" for s in sources for m in ("Dice", "mIoU")]
        for published in table_rows(table):
            assert rows[published.label] == [f"{published.values[s][i]:.3f}" if s in published.values else "n/a"
                                             for s in sources for i in (0, 1)]
        members = [name for name, run in PAPER_RUNS.items() if run.table == table]
        assert len([r for r in rows if r.startswith("**")]) == 2 * len(members)  # two prompt modes each
        for name in members:
            metrics = json.loads((out / "eval" / name / "metrics.json").read_text())
            assert metrics["run"]["paper_run"] == name and metrics["settings"]["data_split"]["preset"] == PAPER_RUNS[name].split
            single = metrics["results"]["model"]["box"]["0.0"]
            ours = rows[f"**{name}/best** (one box)"]
            assert ours == [f"{single[s][k]:.3f}" if s in single else "n/a" for s in sources for k in ("dice", "miou")]
            paper = PAPER_RUNS[name].row
            assert rows[f"difference to {paper.label}, Table {table}"] == [
                f"{single[s][k] - paper.values[s][i]:+.3f}" if s in single else "n/a"
                for s in sources for i, k in ((0, "dice"), (1, "miou"))]


def test_runs_trained_on_their_own_split_and_config(reproduced):
    _, out, model = reproduced
    for name, run in PAPER_RUNS.items():
        settings = json.loads((out / "runs" / name / "best" / "polyp_sam_training.json").read_text())
        assert settings["split_preset"] == run.split and settings["strategy"] == run.strategy
        assert settings["data"] == str(out / "data" / run.split) and settings["model_name_or_path"] == str(model)
        tested = set(json.loads((out / "eval" / name / "metrics.json").read_text())["sources"])
        assert tested == ({"cvc-colondb"} if run.split == "cross-colondb" else set(SOURCE_ORDER))


def test_running_again_resumes_where_it_stopped(reproduced):
    data, out, model = reproduced
    again = _script("--data_root", data, "--output_dir", out, "--model_name_or_path", model, "--dry_run")
    assert again.returncode == 0 and "would run" not in again.stdout
    assert again.stdout.count("skip (") == 14
    # an evaluation lost, a training stopped after its first checkpoint: only those run again
    shutil.rmtree(out / "eval" / "table3-l-full")
    shutil.rmtree(out / "eval" / "table3-b-full")
    (out / "runs" / "table3-b-full" / "train_results.json").unlink()
    again = _script("--data_root", data, "--output_dir", out, "--model_name_or_path", model, "--dry_run")
    planned = re.findall(r"\] (.*): would run", again.stdout)
    assert planned == ["train table3-b-full (continuing from step-0000001)", "evaluate table3-b-full",
                       "evaluate table3-l-full"]
    assert "--resume_from_checkpoint latest" in again.stdout


def test_script_takes_the_commands_flags():
    done = _script("/data/polyp", "OUT")  # the old positional form: refused, with the flags named
    assert done.returncode == 2 and "usage:" in done.stderr and "--data_root" in done.stderr


def _display(source: str) -> str:
    from polyp_sam_hf.data.sources import SOURCES

    return SOURCES[source].display_name
