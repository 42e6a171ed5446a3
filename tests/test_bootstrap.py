"""The paired bootstrap of two evaluations (`polyp-sam bootstrap`, `evaluation.bootstrap`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.core.errors import DataError
from polyp_sam_hf.evaluation.bootstrap import paired_bootstrap, read_frame_scores

HEADER = "source,image_id,method,prompt_mode,box_jitter,dice,iou,empty_mask,polyps,found,false_positives,prompts"


def _per_image_csv(folder: Path, rows, mode: str = "box") -> Path:
    folder.mkdir()
    lines = [HEADER] + [f"{s},{i},{m},{mode},0.0,{d},{d},{e},1,1,0,1" for s, i, m, d, e in rows]
    (folder / "per_image.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_paired_bootstrap_pairs_frames_and_bounds_the_difference(tmp_path):
    a_dice = [0.6 + 0.013 * i for i in range(30)]
    rows_a = [("kvasir", i, "model", d, False) for i, d in enumerate(a_dice)]
    rows_a += [("cvc-clinicdb", i, "model", d, False) for i, d in enumerate(a_dice)]
    # B: every Kvasir frame 0.02 better, ClinicDB the same; its box rows and an empty-mask frame must not count
    rows_b = [("kvasir", i, "model", d + 0.02, False) for i, d in enumerate(a_dice)]
    rows_b += [("cvc-clinicdb", i, "model", d, False) for i, d in enumerate(a_dice)]
    rows_b += [("kvasir", i, "box", 0.0, False) for i in range(30)] + [("kvasir", 99, "model", 1.0, True)]
    a = _per_image_csv(tmp_path / "a", rows_a[::-1])  # another row order: frames pair by id, not by line
    b = _per_image_csv(tmp_path / "b", rows_b + [("kvasir", 99, "model", 0.0, True)], mode="single")  # an old name
    out = tmp_path / "result.json"
    assert cli_main(["bootstrap", str(a), str(b), "--resamples", "2000", "--output_file", str(out)]) == 0
    result = json.loads(out.read_text())["groups"]
    assert result["kvasir"]["n"] == 30 and result["all"]["n"] == 60
    assert result["kvasir"]["difference"] == 0.02 and result["kvasir"]["difference_95"] == [0.02, 0.02]
    assert (result["kvasir"]["b_better"], result["kvasir"]["b_worse"]) == (30, 0)
    assert result["cvc-clinicdb"]["difference"] == 0 and result["cvc-clinicdb"]["difference_95"] == [0, 0]
    low, high = result["kvasir"]["dice_b_95"]
    assert low < result["kvasir"]["dice_b"] < high and high - low > 0.05  # frames vary: the mean's interval is wide

    missing = _per_image_csv(tmp_path / "c", rows_b[1:])
    with pytest.raises(DataError, match="different frames"):
        paired_bootstrap(read_frame_scores(a), read_frame_scores(missing))


def test_paired_bootstrap_by_video_study(tmp_path):
    """CVC-ColonDB's frames group by the release README's studies (numbered out of frame order); a
    dataset without studies stays one group."""
    rows = [("cvc-colondb", str(f), "model", 0.9, False) for f in (1, 38, 39, 300, 301, 380)]
    rows += [("kvasir", "cju0qkwl35piu0993l0dewei2", "model", 0.8, False)]
    a = _per_image_csv(tmp_path / "a", rows)
    result = paired_bootstrap(read_frame_scores(a), read_frame_scores(a), resamples=100, by="sequence")
    assert {g: r["n"] for g, r in result.items()} == {
        "cvc-colondb study 1": 2, "cvc-colondb study 2": 1, "cvc-colondb study 4": 1, "cvc-colondb study 13": 1,
        "cvc-colondb study 15": 1, "kvasir": 1, "all": 7}
    assert list(result)[:5] == ["cvc-colondb study 1", "cvc-colondb study 2", "cvc-colondb study 4",
                                "cvc-colondb study 13", "cvc-colondb study 15"]


def test_the_model_against_a_baseline_of_the_same_evaluation(tmp_path):
    rows = [("kvasir", str(i), "model", 0.9, False) for i in range(5)] + [("kvasir", str(i), "ellipse", 0.8, False)
                                                                        for i in range(5)]
    a = _per_image_csv(tmp_path / "a", rows)
    out = tmp_path / "r.json"
    assert cli_main(["bootstrap", str(a), str(a), "--method_a", "ellipse", "--resamples", "100",
                     "--output_file", str(out)]) == 0
    result = json.loads(out.read_text())["groups"]["kvasir"]
    assert (result["dice_a"], result["dice_b"], result["difference_95"]) == (0.8, 0.9, [0.1, 0.1])


def test_an_evaluation_with_clicks_compares_the_rows_of_the_clicks_asked_for(tmp_path):
    """`evaluate --clicks` writes a row per frame after 0, 1, 2, 3, 5 and 10 clicks from the box: the
    prompt alone is the default, and one folder against itself gives what a correction click adds."""
    folder = tmp_path / "clicks"
    folder.mkdir()
    lines = [HEADER + ",clicks"]
    for i in range(6):
        for clicks in (0, 1, 2, 3, 5, 10):
            dice = 0.8 + 0.01 * clicks + 0.001 * i
            lines.append(f"kvasir,{i},model,box,0.0,{dice},{dice},False,1,1,0,1,{clicks}")
    (folder / "per_image.csv").write_text("\n".join(lines) + "\n")
    assert read_frame_scores(folder) == {("kvasir", str(i)): pytest.approx(0.8 + 0.001 * i) for i in range(6)}
    out = tmp_path / "r.json"
    assert cli_main(["bootstrap", str(folder), str(folder), "--clicks_b", "1", "--resamples", "100",
                     "--output_file", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["clicks_a"], result["clicks_b"]) == (0, 1)
    assert result["groups"]["kvasir"]["difference_95"] == [0.01, 0.01] and result["groups"]["kvasir"]["b_better"] == 6
    with pytest.raises(DataError, match="after 4 clicks"):
        read_frame_scores(folder, clicks=4)


def test_clicks_alone_of_two_evaluations_are_compared_after_the_clicks_asked_for(tmp_path, capsys):
    """`--prompt_mode clicks`: the clicks-alone rows of `evaluate --clicks` (1, 2, 3, 5 and 10 clicks,
    no prompt of their own), two models paired frame by frame after the same click."""
    folders = []
    for name, gain in (("a", 0.0), ("b", 0.02)):
        folder = tmp_path / name
        folder.mkdir()
        lines = [HEADER + ",clicks"]
        for i in range(6):
            lines.append(f"kvasir,{i},model,box,0.0,0.9,0.9,False,1,1,0,1,0")
            for clicks in (1, 2, 3, 5, 10):
                dice = 0.7 + 0.02 * clicks + gain * (clicks == 1) + 0.001 * i
                lines.append(f"kvasir,{i},model,clicks,0.0,{dice},{dice},False,1,1,0,1,{clicks}")
        (folder / "per_image.csv").write_text("\n".join(lines) + "\n")
        folders.append(str(folder))
    out = tmp_path / "r.json"
    assert cli_main(["bootstrap", *folders, "--prompt_mode", "clicks", "--clicks_a", "1", "--clicks_b", "1",
                     "--resamples", "100", "--output_file", str(out)]) == 0
    group = json.loads(out.read_text())["groups"]["kvasir"]
    assert group["dice_a"] == pytest.approx(0.7225) and group["difference_95"] == pytest.approx([0.02, 0.02])
    assert cli_main(["bootstrap", *folders, "--prompt_mode", "clicks", "--clicks_a", "3", "--clicks_b", "3",
                     "--resamples", "100"]) == 0
    assert "+0.0000" in capsys.readouterr().out  # after 3 clicks the two are the same
    assert cli_main(["bootstrap", *folders, "--prompt_mode", "clicks"]) != 0
    assert "at least 1" in capsys.readouterr().err
