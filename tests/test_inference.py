"""PolypSegmenter and `polyp-sam predict`: one embedding for many boxes, clear errors, real frames."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from polyp_sam_hf.commands.cli import main as cli_main
from polyp_sam_hf.data.reading import DataError
from polyp_sam_hf.models.segmenter import PolypSegmenter


@pytest.fixture(scope="module")
def segmenter():
    return PolypSegmenter.from_pretrained("tiny-sam", device="cpu")


def test_k_boxes_share_one_encoder_run(segmenter, monkeypatch):
    calls = {"n": 0}
    real = segmenter.model.get_image_embeddings

    def counting(pixels):
        calls["n"] += 1
        return real(pixels)

    monkeypatch.setattr(segmenter.model, "get_image_embeddings", counting)
    frame = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    masks = segmenter.predict(frame, [[10, 10, 60, 50], [80, 20, 150, 80], [5, 5, 30, 30]])
    assert calls["n"] == 1
    assert masks.shape == (3, 90, 160) and masks.dtype == bool
    probs = segmenter.predict_proba(frame, [10, 10, 60, 50])
    assert probs.shape == (1, 90, 160) and 0 <= probs.min() and probs.max() <= 1


@pytest.mark.parametrize("box,message", [
    ([10, 10, 5, 40], "x1 > x0"),
    ([10, 40, 50, 40], "y1 > y0"),
    ([-3, 10, 50, 40], "outside"),
    ([10, 10, 160, 40], "outside"),
    ([1, 2, 3], "x0, y0, x1, y1"),
])
def test_bad_boxes_are_named(segmenter, box, message):
    frame = np.zeros((90, 160, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        segmenter.predict(frame, box, name="frame.png")


def test_unreadable_image_and_missing_model(segmenter, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png"):
        segmenter.predict(bad, [1, 1, 5, 5])
    with pytest.raises(OSError, match="nothing-here does not exist"):
        PolypSegmenter.from_pretrained(str(tmp_path / "nothing-here"))


def test_our_checkpoint_loads(micro_checkpoint):
    seg = PolypSegmenter.from_pretrained(str(micro_checkpoint), device="cpu")
    assert seg.input_size == 32
    assert seg.predict(np.zeros((40, 50, 3), np.uint8), [2, 2, 30, 30]).shape == (1, 40, 50)


def test_predict_cli_on_real_samples(samples_root, tmp_path):
    images = samples_root / "pranet" / "TestDataset" / "ETIS-LaribPolypDB" / "images"
    boxes = {"135.png": [[100, 100, 200, 220], [300, 50, 400, 120]], "105": [[20, 30, 300, 280]]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    single = tmp_path / "single"
    single.mkdir()
    for name in ("135.png", "105.png"):
        (single / name).symlink_to(images / name)
    out = tmp_path / "out"
    assert cli_main(["predict", "--model_name_or_path", "tiny-sam", "--image", str(single), "--boxes_file",
                     str(tmp_path / "boxes.json"), "--output_dir", str(out)]) == 0
    for stem in ("135", "105"):
        mask = Image.open(out / f"{stem}_mask.png")
        assert mask.size == Image.open(images / f"{stem}.png").size == (512, 512)
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
        assert Image.open(out / f"{stem}_overlay.png").size == (512, 512)
    assert (out / "135_mask_1.png").is_file() and not (out / "105_mask_1.png").exists()


def test_predict_cli_box_flag_csv_and_errors(tmp_path, capsys):
    frame = tmp_path / "f.png"
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(frame)
    out = tmp_path / "o"
    assert cli_main(["predict", "--model_name_or_path", "tiny-sam", "--image", str(frame), "--box", "5,5,40,30",
                     "--output_dir", str(out)]) == 0
    assert Image.open(out / "f_mask.png").size == (80, 60)
    (tmp_path / "b.csv").write_text("image,x0,y0,x1,y1\nf.png,1,2,30,40\nf.png,40,10,70,50\n")
    assert cli_main(["predict", "--model_name_or_path", "tiny-sam", "--image", str(frame), "--boxes_file",
                     str(tmp_path / "b.csv"), "--output_dir", str(out)]) == 0
    assert (out / "f_mask_1.png").is_file()
    assert cli_main(["predict", "--model_name_or_path", "tiny-sam", "--image", str(frame), "--box", "5,5,100,30",
                     "--output_dir", str(out)]) == 1
    assert "outside" in capsys.readouterr().err
    assert cli_main(["predict", "--model_name_or_path", "tiny-sam", "--image", str(frame), "--output_dir", str(out)]) == 1
    assert "No box for" in capsys.readouterr().err


@pytest.mark.parametrize("box", [[float("nan"), 1, 20, 20], [1, 1, float("inf"), 20]])
def test_non_finite_box_is_refused(box):
    from polyp_sam_hf.models.segmenter import validate_boxes

    with pytest.raises(ValueError, match="finite"):
        validate_boxes([box], 64, 48, "frame.png")


@pytest.mark.parametrize("content, message", [
    ('{"frame.png": null}', "entry 'frame.png' is null"),
    ('{"frame.png": ["a", "b", "c", "d"]}', "entry 'frame.png' is"),
    ('{"frame.png": [[1, 2, 3]]}', "four numbers"),
    ('[[1, 2, 3, 4]]', "holds a JSON list"),
    ('"frame.png"', "holds a JSON str"),
    ('{"frame.png": []}', "entry 'frame.png' is \\[\\]"),
])
def test_boxes_json_of_the_wrong_shape_is_named(content, message, tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (64, 48)).save(tmp_path / "frame.png")
    (tmp_path / "boxes.json").write_text(content)
    assert cli_main(["predict", "--model_name_or_path", "tiny-sam", "--image", str(tmp_path / "frame.png"), "--boxes_file",
                     str(tmp_path / "boxes.json"), "--output_dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "boxes.json" in err and re.search(message, err) and "Traceback" not in err


def test_boxes_json_one_flat_box_is_read(tmp_path):
    from polyp_sam_hf.commands.predict import read_boxes_file

    (tmp_path / "b.json").write_text('{"frame.png": [1, 2, 30, 40]}')
    assert read_boxes_file(tmp_path / "b.json") == {"frame.png": [[1.0, 2.0, 30.0, 40.0]]}


@pytest.mark.parametrize("name", ["tiny-sam", "micro-tinyvit-sam-test"])
def test_a_loaded_model_decodes_single_masks_on_the_token_side_with_transformers_logits(name):
    """`from_pretrained` routes single-mask calls to `SingleMaskDecoder` (faster on a CPU): a session
    of a box and two clicks (the previous round's logits as the dense prompt) and a pass with no
    prompt give transformers' logits; a multimask call still goes through transformers' decoder."""
    import torch

    from polyp_sam_hf.models.loading import load_model_and_processor
    from polyp_sam_hf.models.single_mask_decoder import SingleMaskRoute, route_single_masks

    fast = PolypSegmenter.from_pretrained(name, device="cpu")
    route = fast.model.mask_decoder
    assert isinstance(route, SingleMaskRoute) and route_single_masks(fast.model).mask_decoder is route  # once
    calls = []
    route.single.register_forward_hook(lambda *args: calls.append("single"))
    route.decoder.register_forward_hook(lambda *args: calls.append("transformers"))
    plain = PolypSegmenter(*load_model_and_processor(name), device="cpu")
    frame = np.random.default_rng(0).integers(0, 255, (120, 150, 3), dtype=np.uint8)
    embedded = plain.embed(frame)
    box, clicks = [[20, 30, 110, 100]], [(60, 60, 1), (25, 35, 0)]
    for prompts in ((box, clicks), (None, None)):
        expected = plain.session_logits(embedded, *prompts) if prompts[0] else plain.logits(embedded, None)
        got = fast.session_logits(embedded, *prompts) if prompts[0] else fast.logits(embedded, None)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    assert calls == ["single"] * 4  # the box, two clicks, no prompt
    with torch.no_grad():
        out = fast.model(image_embeddings=embedded.embedding[None], input_boxes=torch.tensor([[[20.0, 30, 110, 100]]]),
                         multimask_output=True)
    assert out.pred_masks.shape[2] == 3 and calls[-1] == "transformers"
