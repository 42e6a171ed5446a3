"""Converted MobileSAM / LiteMedSAM against independent implementations, on real frames.

References: the official model code shipped in the same packages as the checkpoints (MobileSAM's
own TinyViT, prompt encoder and mask decoder; LiteMedSAM's vendored ones) and kornia's `Sam`. The
converted model runs transformers' prompt encoder and mask decoder, so a wrong key, a wrong
LayerNorm epsilon or a wrong stride shows up as a logit difference.

Tolerances: all three compute in float32 with differently ordered sums, so logits agree to about
1e-4 (measured: docs/real-weights.md); 2e-3 is 20x that, and 100x below the 0.04 that one wrong
LayerNorm epsilon gives. A mask pixel may differ only where the reference logit is itself within
that tolerance of the threshold 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from reference_sam import kornia_logits, reference_logits, reference_parts

from polyp_sam_hf.data.prompts import component_boxes
from polyp_sam_hf.data.reading import read_pair
from polyp_sam_hf.models.convert import convert_checkpoint, load_meta_state_dict
from polyp_sam_hf.models.loading import load_model_and_processor

LOGIT_TOL = 2e-3
ARCHS = ["mobile-sam", "lite-medsam"]
# (dataset folder, frame): ETIS 135 holds three polyps (three boxes), ColonDB 102 one
FRAMES = [("ETIS-LaribPolypDB", "135.png"), ("CVC-ColonDB", "102.jpg")]


def _frame(samples_root, folder, name):
    base = samples_root / "pranet" / "TestDataset" / folder
    image, mask = read_pair(base / "images" / name, base / "masks" / name)
    return image, component_boxes(mask)


def _model_logits(model, processor, image, boxes):
    inputs = processor(images=image, input_boxes=[boxes], return_tensors="pt")
    with torch.no_grad():
        embeddings = model.get_image_embeddings(inputs["pixel_values"])
        out = model(image_embeddings=embeddings, input_boxes=inputs["input_boxes"].float(), multimask_output=False)
    return inputs, embeddings, out.pred_masks[0, :, 0]


def _assert_same(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape
    diff = (ours - ref).abs().max().item()
    assert diff < LOGIT_TOL, f"max logit difference {diff:.2e}"
    flipped = (ours > 0) != (ref > 0)
    assert bool((ref[flipped].abs() < LOGIT_TOL).all()), "a mask pixel differs where the reference is decided"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("folder,name", FRAMES)
def test_matches_official_code(arch, folder, name, converted, real_weights, samples_root):
    model, processor = load_model_and_processor(str(converted(arch)))
    model.eval()
    image, boxes = _frame(samples_root, folder, name)
    inputs, embeddings, ours = _model_logits(model, processor, image, boxes)
    ref_emb, ref = reference_logits(reference_parts(arch, real_weights(arch)), inputs["pixel_values"],
                                    inputs["input_boxes"][0].float())
    assert (embeddings - ref_emb).abs().max().item() < 1e-3
    assert ours.shape[0] == len(boxes) == (3 if name == "135.png" else 1)
    _assert_same(ours, ref)


@pytest.mark.parametrize("arch", ARCHS)
def test_ellipse_mask_prompt_matches_official_code(arch, converted, real_weights, samples_root):
    """The dense mask prompt goes through the converted `mask_downscaling` weights as in the official
    code: ETIS 135's three boxes, each with the frame's ellipse prompt."""
    from polyp_sam_hf.models.mask_prompts import mask_prompt_logits, set_mask_prompt

    model, processor = load_model_and_processor(str(converted(arch)))
    model.eval()
    set_mask_prompt(model, "ellipse")
    image, boxes = _frame(samples_root, "ETIS-LaribPolypDB", "135.png")
    inputs = processor(images=image, input_boxes=[boxes], return_tensors="pt")
    input_boxes = inputs["input_boxes"].float()
    masks = mask_prompt_logits(model, input_boxes, torch.ones(1, len(boxes), dtype=torch.bool))
    with torch.no_grad():
        embeddings = model.get_image_embeddings(inputs["pixel_values"])
        ours = model(image_embeddings=embeddings, input_boxes=input_boxes, input_masks=masks,
                     multimask_output=False).pred_masks[0, :, 0]
        plain = model(image_embeddings=embeddings, input_boxes=input_boxes, multimask_output=False).pred_masks[0, :, 0]
    _, ref = reference_logits(reference_parts(arch, real_weights(arch)), inputs["pixel_values"], input_boxes[0],
                              masks.expand(len(boxes), -1, -1, -1))
    _assert_same(ours, ref)
    assert (ours - plain).abs().max() > 1.0  # the prompt is not a no-op
    assert masks.shape == (1, 1, 256, 256)  # SAM's mask-prompt grid for both input sizes (1024 and 256)


@pytest.mark.parametrize("folder,name", FRAMES)
def test_mobile_sam_matches_kornia(folder, name, converted, real_weights, samples_root):
    model, processor = load_model_and_processor(str(converted("mobile-sam")))
    model.eval()
    image, boxes = _frame(samples_root, folder, name)
    inputs, embeddings, ours = _model_logits(model, processor, image, boxes)
    ref = kornia_logits(real_weights("mobile-sam"), inputs["pixel_values"], inputs["input_boxes"][0].float())
    _assert_same(ours, ref)


def test_decoder_layer_norm_eps_matters(converted, samples_root):
    """transformers' SamMaskDecoderConfig defaults to eps 1e-6, segment-anything uses 1e-5: the
    converted config must carry 1e-5, and the default would be measurably off."""
    from transformers import AutoConfig

    folder = converted("mobile-sam")
    model, processor = load_model_and_processor(str(folder))
    assert model.config.mask_decoder_config.layer_norm_eps == 1e-5
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    config.mask_decoder_config.layer_norm_eps = 1e-6
    wrong = type(model).from_pretrained(folder, config=config).eval()
    image, boxes = _frame(samples_root, *FRAMES[0])
    _, _, right_logits = _model_logits(model.eval(), processor, image, boxes)
    _, _, wrong_logits = _model_logits(wrong, processor, image, boxes)
    assert (right_logits - wrong_logits).abs().max().item() > 10 * LOGIT_TOL


@pytest.mark.parametrize("arch", ARCHS)
def test_official_hash_recorded(arch, converted):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(converted(arch), trust_remote_code=True)
    assert config.polyp_sam_origin["official"] is True
    assert config.polyp_sam_origin["arch"] == arch


# --- damaged or foreign checkpoints: a clear error naming the tensors or the file ---------------

def _damaged(state: dict) -> list[tuple[str, dict, str]]:
    missing = dict(state)
    del missing["mask_decoder.iou_token.weight"]
    unexpected = {**state, "image_encoder.extra.weight": torch.zeros(3)}
    wrong = {**state, "mask_decoder.mask_tokens.weight": torch.zeros(3, 256)}
    return [
        ("missing", missing, "1 tensors missing: mask_decoder.iou_token.weight"),
        ("unexpected", unexpected, "1 tensors unexpected: vision_encoder.extra.weight"),
        ("wrong shape", wrong, "mask_decoder.mask_tokens.weight (3, 256) (expected (4, 256))"),
    ]


@pytest.mark.parametrize("case", ["missing", "unexpected", "wrong shape"])
def test_convert_names_bad_tensors(case, real_weights, tmp_path):
    state = load_meta_state_dict(real_weights("mobile-sam"))
    _, damaged, message = next(c for c in _damaged(state) if c[0] == case)
    path = tmp_path / "damaged.pt"
    torch.save(damaged, path)
    with pytest.raises(ValueError) as err:
        convert_checkpoint(path, "mobile-sam", tmp_path / "out")
    assert message in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_convert_wrong_arch_is_named(real_weights, tmp_path):
    with pytest.raises(ValueError, match="Check --arch"):
        convert_checkpoint(real_weights("lite-medsam"), "mobile-sam", tmp_path / "out")


@pytest.mark.parametrize("content,message", [
    (b"not a checkpoint at all", "Cannot read"),
    (None, "holds no state dict"),
])
def test_convert_rejects_foreign_files(content, message, tmp_path):
    path = tmp_path / "foreign.pt"
    if content is None:
        torch.save({"weights": [1, 2, 3]}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        convert_checkpoint(path, "mobile-sam", tmp_path / "out")


def test_convert_truncated_file(real_weights, tmp_path):
    path = tmp_path / "truncated.pt"
    path.write_bytes(real_weights("mobile-sam").read_bytes()[: 5_000_000])
    with pytest.raises(ValueError, match=f"Cannot read {path}"):
        convert_checkpoint(path, "mobile-sam", tmp_path / "out")


# --- publishing and the app with the real MobileSAM ---------------------------------------------

@pytest.mark.slow
def test_hub_export_of_mobile_sam(converted, tmp_path, samples_root):
    from huggingface_hub import ModelCard

    from polyp_sam_hf.evaluation.metrics import dice_iou
    from polyp_sam_hf.models.segmenter import PolypSegmenter
    from polyp_sam_hf.publishing.hub import prepare_upload

    folder = prepare_upload(converted("mobile-sam"), tmp_path / "upload", "me/polyp-mobile-sam")
    assert (folder / "modeling_tinyvit_sam.py").is_file()
    card = ModelCard.load(folder / "README.md")
    assert card.data.base_model is None  # no Hub id exists for it; the text names it instead
    assert "mobile-sam" in card.text and "Apache-2.0" in card.text and "6dbb9052" in card.text
    assert 'AutoModel.from_pretrained("me/polyp-mobile-sam", trust_remote_code=True)' in card.text
    image, boxes = _frame(samples_root, *FRAMES[1])
    base = samples_root / "pranet" / "TestDataset" / FRAMES[1][0]
    _, target = read_pair(base / "images" / FRAMES[1][1], base / "masks" / FRAMES[1][1])
    masks = PolypSegmenter.from_pretrained(str(folder), device="cpu").predict(image, boxes)
    assert dice_iou(masks.any(0), target)[0] > 0.8  # a real model finds the real polyp


def test_app_segments_a_real_polyp_with_mobile_sam(converted, samples_root, tmp_path):
    from polyp_sam_hf.evaluation.metrics import dice_iou
    from polyp_sam_hf.models.segmenter import PolypSegmenter
    from polyp_sam_hf.publishing.gradio_demo import EmbeddingMemo, segment

    segmenter = PolypSegmenter.from_pretrained(str(converted("mobile-sam")), device="cpu")
    base = samples_root / "pranet" / "TestDataset" / "ETIS-LaribPolypDB"
    image, target = read_pair(base / "images" / "135.png", base / "masks" / "135.png")
    text = "; ".join(",".join(str(int(v)) for v in box) for box in component_boxes(target))
    _, mask_path = segment(segmenter, image, text, tmp_path, EmbeddingMemo(segmenter))
    mask = np.asarray(Image.open(mask_path)) > 127
    assert dice_iou(mask, target)[0] > 0.8


@pytest.mark.slow
def test_ellipse_mask_prompt_helps_zero_shot_mobile_sam_on_real_frames(converted, samples_root):
    """The ellipse prompt is drawn where the box is: on the 16 real PraNet test frames (one box per
    polyp) zero-shot MobileSAM scores higher with it than with the box alone (measured:
    docs/results-real-samples.md); a prompt drawn in the wrong place, transposed or mis-scaled, would not."""
    from polyp_sam_hf.data.prepare import prepare_dataset
    from polyp_sam_hf.evaluation.scoring import ScoringSettings, score_split
    from polyp_sam_hf.models.segmenter import PolypSegmenter

    test = prepare_dataset(samples_root / "pranet", split_preset="paper")[0]["test"]
    config = ScoringSettings(prompt_modes=("box-per-polyp",))
    model, processor = load_model_and_processor(str(converted("mobile-sam")))
    dice = {}
    for prompt in ("none", "ellipse"):
        scores, _ = score_split(PolypSegmenter(model, processor, "cpu", mask_prompt=prompt), test, config)
        dice[prompt] = np.mean([s.dice for s in scores if s.method == "model"])
    assert len(test) == 16
    assert dice["ellipse"] > dice["none"] + 0.01, dice
