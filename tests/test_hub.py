"""Publishing: dry-run contents, vanilla loading, the card, the token, the upload calls, the widget pipeline."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from unittest import mock

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from transformers import SamModel, SamProcessor, pipeline

import hub_upload
from polyp_sam_hf.publishing.hub import EXPORT_MARKER, max_logit_difference

SECRET = "hf_testtokenthatmustneverappear0123456789"


@pytest.fixture(scope="module")
def metrics_file(micro_checkpoint, prepared_demo, tmp_path_factory):
    from polyp_sam_hf.commands.cli import main as cli_main

    out = tmp_path_factory.mktemp("eval-for-card")
    assert cli_main(["evaluate", "--model_name_or_path", str(micro_checkpoint), "--data", str(prepared_demo),
                     "--output_dir", str(out), "--prompt_mode", "box"]) == 0
    return out / "metrics.json"


@pytest.fixture(scope="module")
def dry_run(micro_checkpoint, metrics_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("dry") / "upload"
    assert hub_upload.main(["--model_name_or_path", str(micro_checkpoint), "--repo_id", "me/polyp-sam-b",
                            "--eval_results", str(metrics_file), "--dry_run", str(out)]) == 0
    return out


def test_dry_run_contents(dry_run):
    names = {p.relative_to(dry_run).as_posix() for p in dry_run.rglob("*") if p.is_file()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= names
    assert any(n.startswith("examples/") and n.endswith(".png") for n in names)
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)


def test_export_loads_with_vanilla_transformers_and_matches(dry_run, micro_checkpoint):
    exported = SamModel.from_pretrained(dry_run)
    source = SamModel.from_pretrained(micro_checkpoint)
    processor = SamProcessor.from_pretrained(dry_run)
    assert max_logit_difference(source, exported, processor) == 0.0
    with torch.no_grad():  # the check is not vacuous: one changed weight shows
        exported.mask_decoder.output_hypernetworks_mlps[0].proj_out.bias.add_(1.0)
    assert max_logit_difference(source, exported, processor) > 1e-3


def test_card_round_trip(dry_run, metrics_file):
    card = ModelCard.load(dry_run / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0" and data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "mask-generation"
    # trained from the built-in micro model (random weights): no base model is claimed
    assert "base_model" not in data and "base_model_relation" not in data
    assert "starts from random weights" in card.text and "facebook/sam-vit" not in card.text.split("## Reproduce")[0]
    assert {"medical", "colonoscopy", "polyp-segmentation", "segment-anything"} <= set(data["tags"])
    assert set(data["metrics"]) == {"dice", "mean_iou"} and data["widget"]
    metrics = json.loads(metrics_file.read_text())["sources"]
    values = {}
    for result in card.data.eval_results:
        values[(result.dataset_type, result.metric_type)] = result.metric_value
    assert {s for s, _ in values} == set(metrics)
    for source, entry in metrics.items():
        assert values[(source, "dice")] == pytest.approx(entry["dice"], abs=5e-5)
        assert values[(source, "mean_iou")] == pytest.approx(entry["miou"], abs=5e-5)
    for needed in ("not a medical device", "box", "Citation", "Kvasir-SEG", "CC BY-NC-SA 4.0", "learning_rate"):
        assert needed in card.text


@pytest.mark.slow
def test_card_usage_snippet_runs_as_written(dry_run):
    text = (dry_run / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert '"me/polyp-sam-b"' in snippet
    local = snippet.replace('"me/polyp-sam-b"', repr(str(dry_run)))
    result = subprocess.run([sys.executable, "-c", local], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "torch.Size([480, 640])" in result.stdout


def test_widget_pipeline_runs_on_the_export(dry_run):
    generator = pipeline("mask-generation", model=str(dry_run), device="cpu", points_per_batch=16)
    from PIL import Image

    image = Image.open(next((dry_run / "examples").glob("*.png")))
    out = generator(image, points_per_batch=16)
    assert "masks" in out and all(m.shape == (image.height, image.width) for m in out["masks"])


def test_missing_token_fails_before_exporting(micro_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored login
    with mock.patch("polyp_sam_hf.publishing.hub.export_checkpoint") as export, mock.patch.object(HfApi, "upload_folder") as up:
        assert hub_upload.main(["--model_name_or_path", str(micro_checkpoint), "--repo_id", "me/x"]) == 1
    export.assert_not_called()
    up.assert_not_called()
    assert "No Hugging Face token" in capsys.readouterr().err


@pytest.mark.slow
def test_upload_calls_and_the_token_never_leaks(micro_checkpoint, metrics_file, tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the upload folder is written here: scanned below
    seen = {}

    def fake_upload_folder(self, **kwargs):
        seen.update(kwargs)
        seen["token"] = self.token
        seen["files"] = {p.name: p.read_bytes() for p in __import__("pathlib").Path(kwargs["folder_path"]).rglob("*") if p.is_file()}
        return mock.Mock(commit_url="https://example.invalid/commit/1")

    caplog.set_level(logging.DEBUG)
    with mock.patch.object(HfApi, "create_repo") as create, mock.patch.object(HfApi, "upload_folder", fake_upload_folder):
        code = hub_upload.main(["--model_name_or_path", str(micro_checkpoint), "--repo_id", "me/polyp-sam-b",
                                "--eval_results", str(metrics_file), "--private"])
    assert code == 0
    create.assert_called_once_with(repo_id="me/polyp-sam-b", repo_type="model", private=True, exist_ok=True)
    assert seen["repo_id"] == "me/polyp-sam-b" and seen["token"] == SECRET
    assert "polyp-sam-b" in seen["commit_message"] and "model.safetensors" in seen["files"]
    assert seen["ignore_patterns"] == [EXPORT_MARKER]  # the export marker never reaches the Hub
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err + caplog.text
    assert all(SECRET.encode() not in content for content in seen["files"].values())
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_base_model_comes_from_the_run_record(tmp_path):
    from polyp_sam_hf.models.provenance import TRAINING_SETTINGS, base_model_of

    def run(name: str, model: str):  # a best/ folder as training writes it: its run's record inside
        best = tmp_path / name / "best"
        best.mkdir(parents=True)
        (best / "config.json").write_text("{}")
        (best / TRAINING_SETTINGS).write_text(json.dumps({"model_name_or_path": model}))
        return best

    from_hub = run("a", "facebook/sam-vit-large")
    assert base_model_of(from_hub, {"model_name_or_path": "facebook/sam-vit-large"}) == "facebook/sam-vit-large"
    # fine-tuned again from a local folder: the base is that folder's own base, not its path
    again = run("b", str(from_hub))
    assert base_model_of(again, {"model_name_or_path": str(from_hub)}) == "facebook/sam-vit-large"
    assert base_model_of(run("c", "tiny-sam"), {"model_name_or_path": "tiny-sam"}) is None
    assert base_model_of(run("d", "x"), None) is None  # nothing recorded: nothing guessed
    local = tmp_path / "org" / "name"
    local.mkdir(parents=True)
    assert base_model_of(run("e", "org/name"), {"model_name_or_path": str(local)}) is None


# --- --dry_run DIR never deletes what the library did not write ----------------------------------

@pytest.mark.parametrize("case", ["user folder", "the run itself", "a file"])
def test_dry_run_refuses_targets_it_would_destroy(case, micro_checkpoint, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(micro_checkpoint, run / "best")
    target = {"user folder": tmp_path / "mine", "the run itself": run, "a file": tmp_path / "notes.txt"}[case]
    if case == "user folder":
        target.mkdir()
        (target / "thesis.tex").write_text("precious")
    if case == "a file":
        target.write_text("precious")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    code = hub_upload.main(["--model_name_or_path", str(run / "best"), "--repo_id", "me/x", "--dry_run", str(target)])
    assert code == 1 and "nothing was" in capsys.readouterr().err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (run / "best" / "model.safetensors").is_file()


@pytest.mark.slow
def test_dry_run_replaces_its_own_earlier_export(micro_checkpoint, tmp_path):
    target = tmp_path / "upload"
    target.mkdir()  # an empty folder is fine
    assert hub_upload.main(["--model_name_or_path", str(micro_checkpoint), "--repo_id", "me/x", "--dry_run", str(target)]) == 0
    assert (target / EXPORT_MARKER).is_file() and (target / "README.md").is_file()
    (target / "stale.txt").write_text("from the first export")
    assert hub_upload.main(["--model_name_or_path", str(micro_checkpoint), "--repo_id", "me/x", "--dry_run", str(target)]) == 0
    assert not (target / "stale.txt").exists() and (target / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".upload*"))  # no staging or old folder left behind


@pytest.fixture(scope="module")
def trained_vit(tmp_path_factory):
    """tiny-sam (a SAM ViT) trained 150 steps of the demo recipe with the library's default (fused)
    attention: trained relative-position tables, so the fused attention's float rounding differs from
    transformers' (a freshly initialised model's tables are zero and both round alike)."""
    from polyp_sam_hf.training.config import parse_config
    from polyp_sam_hf.training.loop import train

    out = tmp_path_factory.mktemp("trained-vit")
    train(*parse_config(["--config", "configs/demo.yaml", "--data", str(out / "data"), "--output_dir", str(out / "run"),
                         "--max_train_steps", "150", "--eval_steps", "150", "--evaluate_test", "false"]))
    return out / "run" / "best"


def _probe(folder, attention):
    from polyp_sam_hf.models.loading import load_model_and_processor
    from polyp_sam_hf.publishing.hub import _probe_inputs, _probe_logits

    model, processor = load_model_and_processor(str(folder), vision_attention=attention)
    return _probe_logits(model, _probe_inputs(processor))


@pytest.mark.slow
def test_a_trained_vit_with_the_default_attention_exports(trained_vit, tmp_path):
    """The README's path (train, then export) stopped at the check: it compared the source run with the
    fused attention against the export run with transformers', whose rounding differs. Now both sides
    run transformers' attention, and the export's logits are the source's."""
    from polyp_sam_hf.commands.cli import main as cli_main

    out = tmp_path / "export"
    assert cli_main(["export", "--model_name_or_path", str(trained_vit), "--repo_id", "me/x", "--output_dir",
                     str(out)]) == 0
    # every side after the command, which sets this process's CPU threads (core/threads.py): logits taken
    # under another thread count (the training fixture's one thread for a small model) differ by 4e-6
    fused, plain = _probe(trained_vit, "fused"), _probe(trained_vit, "transformers")
    assert 0 < float((fused - plain).abs().max()) < 1e-3  # the two attentions differ in rounding only
    exported = SamModel.from_pretrained(out).eval()  # what a Hub user runs: transformers' attention
    processor = SamProcessor.from_pretrained(out)
    from polyp_sam_hf.publishing.hub import _probe_inputs, _probe_logits

    assert torch.equal(_probe_logits(exported, _probe_inputs(processor)), plain)


@pytest.mark.slow
def test_an_export_with_one_wrong_weight_is_refused_and_leaves_nothing(trained_vit, tmp_path, monkeypatch):
    """The check still refuses a real mismatch: one weight of the written file changed."""
    from safetensors.torch import load_file, save_file

    from polyp_sam_hf.commands.cli import main as cli_main
    from polyp_sam_hf.publishing import hub

    real_save = hub.save_pretrained_atomic

    def save_then_corrupt(model, processor, folder, *args):
        real_save(model, processor, folder, *args)
        weights = load_file(str(folder / "model.safetensors"))
        weights["mask_decoder.iou_token.weight"] = weights["mask_decoder.iou_token.weight"] + 0.5
        weights["mask_decoder.mask_tokens.weight"][0, 0] += 0.5
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})

    monkeypatch.setattr(hub, "save_pretrained_atomic", save_then_corrupt)
    out = tmp_path / "export"
    assert cli_main(["export", "--model_name_or_path", str(trained_vit), "--repo_id", "me/x", "--output_dir",
                     str(out)]) == 1
    assert not out.exists() and not list(tmp_path.iterdir())  # no export, no staging folder


def test_export_with_non_finite_weights_is_refused(micro_checkpoint, tmp_path):
    """A NaN logit difference used to pass the check (NaN > atol is False)."""
    from polyp_sam_hf.models.loading import load_model_and_processor
    from polyp_sam_hf.publishing.hub import export_checkpoint

    model, processor = load_model_and_processor(str(micro_checkpoint))
    with torch.no_grad():
        model.mask_decoder.iou_token.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan-model")
    processor.save_pretrained(tmp_path / "nan-model")
    with pytest.raises(ValueError, match="mask_decoder.iou_token.weight holds NaN"):
        export_checkpoint(tmp_path / "nan-model", tmp_path / "export")
    assert not (tmp_path / "export").exists()


@pytest.mark.slow
def test_export_logit_check_is_nan_safe(micro_checkpoint, tmp_path, monkeypatch):
    """Past the load-time check (bypassed here), a NaN logit difference still fails the comparison."""
    from polyp_sam_hf.models import loading as modeling
    from polyp_sam_hf.publishing.hub import export_checkpoint

    model, processor = modeling.load_model_and_processor(str(micro_checkpoint))
    with torch.no_grad():
        model.mask_decoder.iou_token.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan-model")
    processor.save_pretrained(tmp_path / "nan-model")
    monkeypatch.setattr(modeling, "check_finite_weights", lambda *a: None)
    with pytest.raises(RuntimeError, match="gives logits nan away"):
        export_checkpoint(tmp_path / "nan-model", tmp_path / "export")


def test_card_refuses_an_evaluation_of_other_weights(micro_checkpoint, metrics_file, tmp_path, capsys):
    """The card's numbers must be this model's: an evaluation of other weights is refused before anything is written."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(micro_checkpoint, other)
    from polyp_sam_hf.models.loading import load_model_and_processor

    model, processor = load_model_and_processor(str(other))
    with torch.no_grad():
        model.mask_decoder.iou_token.weight.add_(1.0)
    model.save_pretrained(other)
    code = hub_upload.main(["--model_name_or_path", str(other), "--repo_id", "someone/polyp-sam-x", "--eval_results",
                        str(metrics_file), "--dry_run", str(tmp_path / "up")])
    assert code == 1 and "scored other weights" in capsys.readouterr().err
    assert not (tmp_path / "up").exists()
    # an evaluation recorded without the weights' hash is matched by the model path
    metrics = json.loads(metrics_file.read_text())
    del metrics["model_sha256"]
    (tmp_path / "old.json").write_text(json.dumps(metrics))
    code = hub_upload.main(["--model_name_or_path", str(other), "--repo_id", "someone/polyp-sam-x", "--eval_results",
                        str(tmp_path / "old.json"), "--dry_run", str(tmp_path / "up")])
    assert code == 1 and "is an evaluation of" in capsys.readouterr().err


def test_card_of_a_model_trained_in_stages_shows_every_stage_and_no_local_path(tmp_path):
    from polyp_sam_hf.models.provenance import TRAINING_SETTINGS, earlier_runs
    from polyp_sam_hf.publishing.hub import build_model_card

    def best(name: str, record: dict):  # a best/ folder as training writes it: its run's record inside
        folder = tmp_path / name / "best"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / TRAINING_SETTINGS).write_text(json.dumps(record))
        return folder

    private = str(tmp_path / "my-machine")
    first = best("decoder", {"model_name_or_path": "tiny-sam", "strategy": "decoder", "learning_rate": 1.5e-4,
                             "cache_dir": private, "data": private, "output_dir": private})
    second = {"model_name_or_path": str(first), "strategy": "lora", "learning_rate": 1e-4, "cache_dir": private}
    last = best("lora", second)
    assert earlier_runs(last, second) == [json.loads((first / TRAINING_SETTINGS).read_text())]
    assert earlier_runs(first, json.loads((first / TRAINING_SETTINGS).read_text())) == []  # a built-in start

    text = build_model_card(last, "me/two-stages", None, second, []).text
    settings, reproduce = text.split("## Training settings")[1], text.split("## Reproduce")[1]
    stage1, stage2 = settings.index("Stage 1:"), settings.index("Stage 2, this checkpoint:")
    assert stage1 < settings.index("strategy: decoder") < stage2 < settings.index("strategy: lora")
    assert "model_name_or_path: tiny-sam" in settings and "model_name_or_path: stage1/best" in settings  # stage 2 starts where stage 1 wrote
    assert reproduce.index("--config stage1.yaml --output_dir stage1") < reproduce.index("--config stage2.yaml")
    assert private not in text and str(tmp_path) not in text and "cache_dir" not in text

    single = build_model_card(first, "me/one-stage", None, json.loads((first / TRAINING_SETTINGS).read_text()), [])
    assert "Stage 1" not in single.text and "--config run.yaml" in single.text and private not in single.text
