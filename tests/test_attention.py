"""The fused relative-position attention gives transformers' SAM attention, forward and backward."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import SamConfig, SamModel, SamVisionConfig

from polyp_sam_hf.models.attention import FusedRelPosAttention, set_vision_attention, vision_attention_of
from polyp_sam_hf.models.loading import load_model_and_processor

# Small encoders with the head layout of SAM's three ViTs (heads, head width as in ViT-B/L/H where it
# fits a test): window 5 on a 16 x 16 grid pads every window row; window 4 pads none.
SHAPES = {
    "vit-b": dict(hidden_size=96, num_attention_heads=12, window_size=5, global_attn_indexes=[1, 3]),
    "vit-l": dict(hidden_size=128, num_attention_heads=16, window_size=4, global_attn_indexes=[1, 3]),
    "vit-h": dict(hidden_size=160, num_attention_heads=16, window_size=5, global_attn_indexes=[3]),  # head width 10
}


def _encoder_pair(shape: str, implementation: str) -> tuple[SamModel, SamModel]:
    vision = SamVisionConfig(num_hidden_layers=4, image_size=64, patch_size=4, output_channels=32,
                             mlp_dim=64, **SHAPES[shape])
    config = SamConfig(vision_config=vision.to_dict())
    config._attn_implementation = implementation
    torch.manual_seed(0)
    reference = SamModel(config).float()
    with torch.no_grad():  # SAM's init leaves rel_pos at zero and projections near it: nothing to compare
        for name, param in reference.vision_encoder.named_parameters():
            param.normal_(0.0, 0.5 if "rel_pos" in name else 0.1)
            if "norm" in name and name.endswith("weight"):
                param.add_(1.0)
    fused = copy.deepcopy(reference)
    assert set_vision_attention(fused, "fused") == 4
    return reference, fused


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / a.abs().max()).item()


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_fused_attention_matches_transformers_forward_and_gradients(shape, implementation):
    reference, fused = _encoder_pair(shape, implementation)
    pixels = torch.randn(2, 3, 64, 64)
    outputs = []
    for model in (reference, fused):
        hidden = model.vision_encoder(pixels, output_hidden_states=True).hidden_states[-1]
        hidden.square().mean().backward()
        outputs.append(hidden)
    assert _relative(*outputs) < 1e-5
    fused_params = dict(fused.named_parameters())
    for layer in (0, 1, 3):  # windowed and global blocks
        for part in ("qkv.weight", "qkv.bias", "rel_pos_h", "rel_pos_w"):
            name = f"vision_encoder.layers.{layer}.attn.{part}"
            expected = dict(reference.named_parameters())[name].grad
            assert expected.abs().max() > 0, name
            assert _relative(expected, fused_params[name].grad) < 1e-4, name


def test_the_switch_restores_transformers_attention_and_saves_a_plain_sam(tmp_path):
    reference, fused = _encoder_pair("vit-b", "sdpa")
    assert vision_attention_of(fused) == "fused" and vision_attention_of(reference) == "transformers"
    fused.save_pretrained(tmp_path / "m")
    loaded = SamModel.from_pretrained(tmp_path / "m")  # vanilla transformers: no trace of the swap
    assert type(loaded.vision_encoder.layers[0].attn).__module__.startswith("transformers.")
    assert all(torch.equal(t, fused.state_dict()[k]) for k, t in loaded.state_dict().items())
    set_vision_attention(fused, "transformers")
    assert type(fused.vision_encoder.layers[0].attn) is type(reference.vision_encoder.layers[0].attn)


def test_library_loading_uses_fused_attention_and_leaves_tinyvit_alone():
    model, _ = load_model_and_processor("micro-sam-test")
    assert all(isinstance(layer.attn, FusedRelPosAttention) for layer in model.vision_encoder.layers)
    plain, _ = load_model_and_processor("micro-sam-test", vision_attention="transformers")
    assert vision_attention_of(plain) == "transformers"
    tinyvit, _ = load_model_and_processor("micro-tinyvit-sam-test")
    assert vision_attention_of(tinyvit) is None and set_vision_attention(tinyvit, "fused") == 0
