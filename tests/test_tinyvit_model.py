"""SAM with a TinyViT encoder (the MobileSAM / LiteMedSAM architecture) through the whole library,
at 64 px with random weights: strategies, BatchNorm, saving, loading without the library, export."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import train_args

from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.models.modeling_tinyvit_sam import TinyViTSamModel
from polyp_sam_hf.publishing.hub import standalone_logits
from polyp_sam_hf.training.config import parse_config
from polyp_sam_hf.training.loop import train
from polyp_sam_hf.training.strategies import get_strategy  # noqa: E402

MODEL = "micro-tinyvit-sam-test"


def _encoder_buffers(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.vision_encoder.named_buffers() if "running" in k or "num_batches" in k}


def _run(prepared_demo, out, strategy, *extra):
    args = train_args(prepared_demo, out, "--max_train_steps", "2", *extra)
    args[args.index("--model_name_or_path") + 1] = MODEL
    args[args.index("--strategy") + 1] = strategy
    return train(*parse_config(args))


@pytest.mark.parametrize("strategy", ["decoder", "lora", "full"])
def test_training_keeps_batchnorm_statistics(strategy, prepared_demo, tmp_path):
    """A decoder-only run (encoder run every step, no embedding cache) and the full and LoRA runs
    leave every BatchNorm running statistic of the encoder as loaded."""
    before, _ = load_model_and_processor(MODEL, seed=42)
    _run(prepared_demo, tmp_path / "run", strategy, "--embedding_cache", "false")
    after = TinyViTSamModel.from_pretrained(tmp_path / "run" / "best")
    buffers = _encoder_buffers(before)
    assert buffers and len(buffers) == len(_encoder_buffers(after))
    for name, value in _encoder_buffers(after).items():
        assert torch.equal(value, buffers[name]), name
    changed = [n for n, p in after.vision_encoder.named_parameters()
               if not torch.equal(p, dict(before.vision_encoder.named_parameters())[n])]
    # decoder: the encoder is frozen; full and LoRA (merged into the weights): it trains
    assert (len(changed) == 0) == (strategy == "decoder")


def test_batchnorm_would_drift_without_freezing():
    """The check above can fail: in plain train mode BatchNorm updates its running statistics
    even with every parameter frozen."""
    model, processor = load_model_and_processor(MODEL)
    model = get_strategy("decoder").apply(model)
    before = _encoder_buffers(model)
    model.vision_encoder.freeze_batchnorm = False
    model.train()
    model.get_image_embeddings(torch.randn(2, 3, 64, 64))
    assert any(not torch.equal(v, before[k]) for k, v in _encoder_buffers(model).items())
    model.vision_encoder.freeze_batchnorm = True
    model.train()
    assert not any(m.training for m in model.vision_encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert model.mask_decoder.training


def test_lora_targets_tinyvit_attention():
    model, _ = load_model_and_processor(MODEL)
    model = get_strategy("lora").apply(model, lora_rank=4)
    lora = [n for n, p in model.named_parameters() if "lora_" in n and p.requires_grad]
    # TinyViT-5M has 2 + 6 + 2 attention blocks (stages 2-4), two LoRA matrices each
    assert len(lora) == 20
    assert all(".blocks." in n and ".attn.qkv." in n for n in lora)


@pytest.mark.slow
def test_saved_model_loads_without_the_library(prepared_demo, tmp_path):
    _run(prepared_demo, tmp_path / "run", "decoder")
    best = tmp_path / "run" / "best"
    config = json.loads((best / "config.json").read_text())
    assert config["model_type"] == "tinyvit_sam"
    assert config["auto_map"]["AutoModel"] == "modeling_tinyvit_sam.TinyViTSamModel"
    assert (best / "modeling_tinyvit_sam.py").is_file()
    name, logits = standalone_logits(best)
    assert name == "TinyViTSamModel"
    from polyp_sam_hf.publishing.hub import _probe_inputs

    model, processor = load_model_and_processor(str(best))
    inputs = _probe_inputs(processor)
    with torch.no_grad():
        ours = model.eval()(pixel_values=inputs["pixel_values"], input_boxes=inputs["input_boxes"].float(),
                            multimask_output=False).pred_masks.flatten()
    assert torch.allclose(ours, logits, atol=1e-5)
    # and a changed weight would show
    with torch.no_grad():
        model.mask_decoder.iou_token.weight.add_(1.0)
        changed = model(pixel_values=inputs["pixel_values"], input_boxes=inputs["input_boxes"].float(),
                        multimask_output=False).pred_masks.flatten()
    assert (changed - logits).abs().max() > 1e-3


@pytest.mark.slow
def test_standalone_load_really_excludes_the_library(tmp_path):
    """A folder whose modelling file imports polyp_sam_hf fails the standalone check."""
    model, processor = load_model_and_processor(MODEL)
    model.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    code = tmp_path / "m" / "modeling_tinyvit_sam.py"
    code.write_text("import polyp_sam_hf\n" + code.read_text())
    with pytest.raises(RuntimeError, match="does not load without polyp-sam-hf"):
        standalone_logits(tmp_path / "m")
