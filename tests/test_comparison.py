"""The paper's tables as data, and this library's runs set beside them (results.md, compare, reproduce)."""

from __future__ import annotations

import csv
import re

import pytest
from conftest import REPO_ROOT

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.evaluation.comparison import identify, results_markdown, results_section
from polyp_sam_hf.evaluation.published import PAPER_RUNS, PUBLISHED, table_rows
from polyp_sam_hf.evaluation.record import EvaluationRecord

TABLES_CSV = REPO_ROOT.parent / "shared" / "paper" / "tables.csv"
DISPLAY = {"kvasir": "Kvasir-SEG", "cvc-clinicdb": "CVC-ClinicDB", "cvc-colondb": "CVC-ColonDB",
           "etis": "ETIS-LaribPolypDB", "cvc-300": "CVC-300"}


def test_published_values_match_the_papers_transcription_cell_by_cell():
    if not TABLES_CSV.is_file():
        pytest.skip(f"the paper's tables.csv is not beside this repository ({TABLES_CSV})")
    expected = {}
    for r in csv.DictReader(open(TABLES_CSV)):
        key = (int(r["table"]), r["split"], r["method"], r["strategy"] or None, r["source"])
        expected[key] = (float(r["dice"]), float(r["miou"]))
    ours = {(row.table, row.split, row.method, row.strategy, source): pair
            for row in PUBLISHED for source, pair in row.values.items()}
    assert set(ours) == set(expected)  # no cell missing, none invented
    different = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert not different


def _metrics(label, method, strategy, split, dice_by_source, protocol="paper", paper_run=None, modes=("box",)):
    """An evaluation as `polyp-sam evaluate` records it, with the model's Dice given per source
    (mIoU = Dice - 0.05; the ellipse baseline = Dice - 0.1, the box = Dice - 0.2; no false positives)."""
    def per_source(offset):
        entries = {s: {"n": 3, "dice": d - offset, "miou": d - offset - 0.05, "fp_per_frame": 0.0}
                   for s, d in dice_by_source.items()}
        return {"0.0": {**entries, "all": {"n": 3 * len(entries), "dice": 0.0, "miou": 0.0, "fp_per_frame": 0.0}}}

    results = {name: {mode: per_source(offset) for mode in modes}
               for name, offset in (("model", 0.0), ("ellipse", 0.1), ("box", 0.2))}
    return EvaluationRecord.from_json({
        "settings": {"protocol": protocol}, "primary": {"prompt_mode": modes[0], "box_jitter": 0.0},
        "results": results,
        "run": {"label": label, "method": method, "strategy": strategy, "split": split, "paper_run": paper_run}})


def _table_cells(text: str) -> dict[str, list[str]]:
    """Markdown rows by their first cell: the cells after the first three (Method, Kind, Given a box)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| Method"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[3:]
    return rows


def test_decoder_run_is_compared_with_table_1s_decoder_row():
    metrics = _metrics("runs/b-dec/best", "Polyp-SAM-B", "decoder", "paper", {"etis": 0.871, "cvc-colondb": 0.900})
    main, held_out = results_section(metrics).split("**Beside Table 3")
    rows = _table_cells(main)
    # Table 2's nine methods, and Table 1's row of the run's strategy (Table 2 has no decoder row)
    assert {r.label for r in table_rows(2)} | {"Polyp-SAM-B (decoder)"} <= set(rows)
    # columns: the run's sources only, in the library's order (ColonDB, then ETIS)
    assert rows["HSNet"] == ["0.810", "0.735", "0.808", "0.734"]
    # 0.900 - 0.891 (Table 1 decoder ColonDB Dice), 0.850 - 0.835; 0.871 - 0.885, 0.821 - 0.834
    assert rows["difference to Polyp-SAM-B (decoder), Table 1"] == ["+0.009", "+0.015", "-0.014", "-0.013"]
    assert rows["**runs/b-dec/best** (one box)"] == ["0.900", "0.850", "0.871", "0.821"]
    assert rows["ellipse from the same boxes (one box)"] == ["0.800", "0.750", "0.771", "0.721"]
    # CVC-ColonDB trained nothing: its column also stands beside Table 3's rows, with what the run trained on
    beside = _table_cells(held_out)
    assert beside["Polyp-SAM-B (full)"] == ["0.906", "0.855"] and beside["HSNet"] == ["0.810", "0.735"]
    assert beside["**runs/b-dec/best** (one box)"] == ["0.900", "0.850"]
    assert "trained on the `paper` split's training frames" in held_out and "difference to" not in held_out


def test_compare_table_3_takes_a_paper_split_run_for_its_held_out_column(tmp_path, capsys):
    """`polyp-sam compare --table 3`: a run of the paper's split scored on CVC-ColonDB stands beside Table 3;
    one without CVC-ColonDB does not."""
    from polyp_sam_hf.commands.cli import main as cli_main

    paths = []
    for name, sources in (("with", {"kvasir": 0.92, "cvc-colondb": 0.93}), ("without", {"kvasir": 0.92})):
        path = tmp_path / f"{name}.json"
        _metrics(name, None, "lora", "paper", sources).write(path)
        paths.append(str(path))
    assert cli_main(["compare", *paths, "--table", "3"]) == 0
    text = capsys.readouterr().out
    rows = _table_cells(text)
    assert rows["**with** (one box)"] == ["0.930", "0.880"] and "**without** (one box)" not in rows
    assert "Runs that match no table shown" in text and "`without`" in text.split("Runs that match no table shown")[1]


def test_full_run_of_the_other_split_is_not_compared():
    """A Table 2 backbone and strategy tested on the cross-colondb split meets Table 3's row, not Table 2's."""
    metrics = _metrics("x", "Polyp-SAM-L", "full", "cross-colondb", {"cvc-colondb": 0.881})
    text = results_section(metrics)
    rows = _table_cells(text)
    assert set(re.findall(r"published, Table (\d)", text)) == {"3"} and text.count("published, Table 3") == 9
    assert rows["difference to Polyp-SAM-L (full), Table 3"] == ["+0.000", "+0.006"]  # 0.831 - 0.825
    assert rows["HSNet"] == ["0.810", "0.735"]  # Table 3 repeats Table 2's ColonDB values


@pytest.mark.parametrize("case, metrics, reason", [
    ("unknown split", _metrics("a", "Polyp-SAM-B", "full", None, {"etis": 0.9}), "never reported"),
    ("test-only split", _metrics("a", "Polyp-SAM-B", "full", "test-only", {"etis": 0.9}), "never reported"),
    ("no backbone", _metrics("a", None, "full", "paper", {"etis": 0.9}), "not fine-tuned from SAM ViT-B"),
    ("no such row", _metrics("a", "Polyp-SAM-L", "decoder", "paper", {"etis": 0.9}), "no Polyp-SAM-L row"),
    ("other protocol", _metrics("a", "Polyp-SAM-B", "full", "paper", {"etis": 0.9}, protocol="pranet"), "`pranet`"),
])
def test_no_difference_without_a_matching_row_and_the_reason_is_said(case, metrics, reason):
    text = results_section(metrics)
    assert "difference to" not in text
    assert reason in text
    assert "| HSNet | published, Table 2 | no | 0.808 | 0.734 |" in text  # still shown for reference


def test_difference_only_for_the_papers_single_box():
    metrics = _metrics("a", "Polyp-SAM-B", "full", "paper", {"etis": 0.95}, modes=("box-per-polyp", "box"))
    rows = _table_cells(results_section(metrics))
    assert rows["difference to Polyp-SAM-B (full), Table 2"] == ["+0.047", "+0.048"]  # from the single-box row
    assert len([r for r in rows if r.startswith("difference")]) == 1


def test_identify_declared_paper_run_and_its_split():
    assert identify("x", None, {"strategy": "lora"}, "cross-colondb", "table3-l-full").method == "Polyp-SAM-L"
    with pytest.raises(ValueError, match="table1-b-decoder is a Table 1 run.*cross-colondb"):
        identify("x", None, None, "cross-colondb", "table1-b-decoder")
    with pytest.raises(ValueError, match="paper's runs are"):
        identify("x", None, None, "paper", "table9")
    inferred = identify("x", "facebook/sam-vit-large", {"strategy": "full"}, "paper")
    assert (inferred.method, inferred.strategy, inferred.paper_run) == ("Polyp-SAM-L", "full", None)


def test_compare_command_places_each_run_in_its_table(tmp_path, capsys):
    runs = {
        "b-dec": _metrics("b-dec", "Polyp-SAM-B", "decoder", "paper", {"kvasir": 0.86, "etis": 0.80}),
        "l-x": _metrics("l-x", "Polyp-SAM-L", "full", "cross-colondb", {"cvc-colondb": 0.87}),
        "tiny": _metrics("tiny", None, "full", "test-only", {"etis": 0.10}),
    }
    paths = []
    for name, metrics in runs.items():
        (tmp_path / name).mkdir()
        metrics.write(tmp_path / name / "metrics.json")
        paths.append(str(tmp_path / name))
    assert cli_main(["compare", *paths, "--output_file", str(tmp_path / "c.md")]) == 0
    text = (tmp_path / "c.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)
    table_1, table_2, table_3, unplaced = sections[1], sections[2], sections[3], sections[4]
    assert "**b-dec**" in table_1 and "**b-dec**" in table_2 and "**l-x**" in table_3
    assert "**l-x**" not in table_2 and "**tiny**" not in text
    assert _table_cells(table_1)["difference to Polyp-SAM-B (decoder), Table 1"][:2] == ["-0.022", "-0.025"]
    assert "`tiny`: split `test-only`" in unplaced
    # one table asked for: only that section
    assert cli_main(["compare", *paths, "--table", "3"]) == 0
    assert "## Table 3" in capsys.readouterr().out and "## Table 1" not in text.split("## Table 3")[1]


def test_compare_names_a_run_without_metrics(tmp_path, capsys):
    (tmp_path / "run" / "best").mkdir(parents=True)
    assert cli_main(["compare", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "holds no metrics.json" in err and f"polyp-sam evaluate --model_name_or_path {tmp_path / 'run' / 'best'}" in err


def test_reproduce_dry_run_lists_six_trainings_and_their_evaluations(tmp_path, capsys):
    assert cli_main(["reproduce", "--data_root", str(tmp_path / "data"), "--output_dir", str(tmp_path / "out"),
                     "--gpus", "2", "--dry_run"]) == 0
    out = capsys.readouterr().out
    trainings = re.findall(r"\] train (\S+): would run\n\s+(.*)", out)
    evaluations = re.findall(r"\] evaluate (\S+): would run\n\s+(.*)", out)
    assert [name for name, _ in trainings] == list(PAPER_RUNS) == [name for name, _ in evaluations]
    for name, command in trainings:
        split = PAPER_RUNS[name].split
        assert "accelerate.commands.launch --num_processes 2" in command and "--multi_gpu" in command
        assert f"configs/paper/{name}.yaml" in command and f"out/data/{split} " in command
        assert command.endswith(f"out/runs/{name}")
    for name, command in evaluations:
        assert f"--model_name_or_path {tmp_path}/out/runs/{name}/best" in command and f"--paper_run {name}" in command
    assert len(re.findall(r"prepare the (\S+) split: would run", out)) == 2
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_an_evaluation_of_validation_frames_is_not_set_beside_the_published_test_numbers(tmp_path):
    """`evaluate --split validation` (how a recipe is chosen): results.md says which frames were scored and
    shows no published row and no difference; `compare` places it in no paper table and says why."""
    metrics = _metrics("val", "Polyp-SAM-B", "full", "paper", {"kvasir": 0.95, "cvc-clinicdb": 0.94})
    metrics.settings["split"] = "validation"
    text = results_markdown(metrics)
    assert "published, Table" not in text and "difference to" not in text and "paper's test set" not in text
    assert "split `paper` (its `validation` frames)" in text and "not the test frames" in text
    assert _table_cells(results_section(metrics))["**val** (one box)"] == ["0.950", "0.900", "0.940", "0.890"]
    # the same run scored on its test frames is Table 2's, with the difference to Polyp-SAM-B (full)
    metrics.settings["split"] = "test"
    assert "difference to Polyp-SAM-B (full), Table 2" in results_markdown(metrics)

    metrics.settings["split"] = "validation"
    metrics.write(tmp_path / "val.json")
    assert cli_main(["compare", str(tmp_path / "val.json"), "--output_file", str(tmp_path / "c.md")]) == 0
    text = (tmp_path / "c.md").read_text()
    tables, unplaced = text.split("## Runs that match no table shown")
    assert "**val**" not in tables
    assert "`val`: split `paper`, Polyp-SAM-B, strategy `full`, scored on its `validation` frames" in unplaced
