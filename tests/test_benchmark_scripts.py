"""The GPU benchmark scripts run end to end on the CPU with the tiny model (their `--cpu_check`)."""

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
    subprocess.run(["bash", "benchmarks/gpu.sh", "--cpu_check"], cwd=ROOT, env=env, check=True,
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
    subprocess.run([sys.executable, "step_profile.py", "--model_name_or_path", "tiny-sam", "--batch", "2", "--steps", "2",
                    "--warmup", "1", "--rows", "5", "--output_dir", str(report)],
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
                    "--output_dir", str(out)], cwd=ROOT / "benchmarks", check=True, capture_output=True)
    result = json.loads(out.read_text())
    assert result["loop_images_per_s"] > 0 and result["bare_images_per_s"] > 0
    assert result["loop_share_of_bare"] == pytest.approx(
        result["loop_images_per_s"] / result["bare_images_per_s"], rel=0.01)


def test_weight_soup_scores_each_run_as_its_training_did(prepared_demo, tmp_path):
    from conftest import train_args

    from polyp_sam_hf.training.config import parse_config
    from polyp_sam_hf.training.loop import train

    runs = [tmp_path / "low", tmp_path / "high"]
    for run, lr in zip(runs, ("1e-3", "3e-3")):
        train(*parse_config(train_args(prepared_demo, run, "--max_train_steps", "2", "--learning_rate", lr)))
    out = tmp_path / "soup.json"
    subprocess.run([sys.executable, "benchmarks/weight_soup.py", *map(str, runs), "--config",
                    str(runs[0] / "config.yaml"), "--data", str(prepared_demo), "--output_dir", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    result = json.loads(out.read_text())
    first = max(runs, key=lambda r: result["runs"][r.name])
    # the soup's harness reproduces the run's own best validation Dice: the same frames, prompts and scorer
    assert result["alone"] == pytest.approx(result["runs"][first.name], abs=1e-6)
    assert list(result["tried"]) == [r.name for r in runs if r != first]
    (tried,) = result["tried"].values()
    assert result["uniform"] == tried  # two runs: the uniform soup is the one soup tried
    assert result["uniform"] != result["alone"]  # the average really replaced the weights
    assert result["greedy_dice"] == max(result["alone"], result["uniform"])


def _per_image_csv(folder: Path, rows) -> Path:
    folder.mkdir()
    lines = ["source,image_id,method,prompt_mode,box_jitter,dice,iou,empty_mask,polyps,found,false_positives,prompts"]
    lines += [f"{s},{i},{m},box,0.0,{d},{d},{e},1,1,0,1" for s, i, m, d, e in rows]
    (folder / "per_image.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_paired_bootstrap_pairs_frames_and_bounds_the_difference(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import paired_bootstrap

    a_dice = [0.6 + 0.013 * i for i in range(30)]
    rows_a = [("kvasir", i, "model", d, False) for i, d in enumerate(a_dice)]
    rows_a += [("clinic", i, "model", d, False) for i, d in enumerate(a_dice)]
    # B: every Kvasir frame 0.02 better, ClinicDB the same; its box rows and an empty-mask frame must not count
    rows_b = [("kvasir", i, "model", d + 0.02, False) for i, d in enumerate(a_dice)]
    rows_b += [("clinic", i, "model", d, False) for i, d in enumerate(a_dice)]
    rows_b += [("kvasir", i, "box", 0.0, False) for i in range(30)] + [("kvasir", 99, "model", 1.0, True)]
    a = _per_image_csv(tmp_path / "a", rows_a[::-1])  # another row order: frames pair by id, not by line
    b = _per_image_csv(tmp_path / "b", rows_b + [("kvasir", 99, "model", 0.0, True)])
    out = tmp_path / "result.json"
    paired_bootstrap.main([str(a), str(b), "--resamples", "2000", "--output_dir", str(out)])
    result = json.loads(out.read_text())["datasets"]
    assert result["kvasir"]["n"] == 30 and result["all"]["n"] == 60
    assert result["kvasir"]["difference"] == 0.02 and result["kvasir"]["difference_95"] == [0.02, 0.02]
    assert (result["kvasir"]["b_better"], result["kvasir"]["b_worse"]) == (30, 0)
    assert result["clinic"]["difference"] == 0 and result["clinic"]["difference_95"] == [0, 0]
    low, high = result["kvasir"]["dice_b_95"]
    assert low < result["kvasir"]["dice_b"] < high and high - low > 0.05  # frames vary: the mean's interval is wide

    missing = _per_image_csv(tmp_path / "c", rows_b[1:])
    with pytest.raises(SystemExit, match="different frames"):
        paired_bootstrap.main([str(a), str(missing)])
