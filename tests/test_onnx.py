"""ONNX export (`polyp-sam export --onnx`), its check, and the ONNX Runtime backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from polyp_sam_hf.core.errors import ConfigError, ExportCheckError, ModelLoadError
from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.models.onnx_graphs import DECODER, ENCODER
from polyp_sam_hf.models.onnx_runtime import OnnxSam
from polyp_sam_hf.models.segmenter import PolypSegmenter, to_mask
from polyp_sam_hf.models.single_mask_decoder import SingleMaskDecoder
from polyp_sam_hf.publishing.onnx_export import check_graphs, export_graphs, export_onnx, probe_frames
from polyp_sam_hf.training.checkpointing import save_pretrained_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]


def relative_gap(expected: torch.Tensor, got: torch.Tensor) -> float:
    return float((expected - got).abs().max() / expected.abs().max())


def dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    """tiny SAM (a SAM ViT) with the ellipse mask prompt, saved and exported to float32 graphs."""
    from polyp_sam_hf.models.mask_prompts import set_mask_prompt

    folder = tmp_path_factory.mktemp("tiny-onnx") / "model"
    model, processor = load_model_and_processor("tiny-sam")
    set_mask_prompt(model, "ellipse")
    save_pretrained_atomic(model, processor, folder)
    export_onnx(folder, quantize=False)
    return folder


@pytest.fixture(scope="module")
def mobile_sam_upload(converted, tmp_path_factory) -> Path:
    """Converted MobileSAM through the real command: `polyp-sam export --onnx` (both variants, checked)."""
    out = tmp_path_factory.mktemp("mobile-onnx") / "upload"
    result = subprocess.run([sys.executable, "-m", "polyp_sam_hf", "export", "--model_name_or_path",
                             str(converted("mobile-sam")), "--repo_id", "org/polyp-mobile", "--output_dir", str(out),
                             "--onnx"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_graphs_take_and_give_transformers_js_names(tiny_export):
    """The two files, their inputs and outputs by name, the optional inputs' defaults and the dynamic
    number of prompts and points, read from the files themselves."""
    # transformers.js's SamModel: the files it opens, the names it passes and reads (written out here,
    # not taken from the library, so a renamed tensor fails)
    encoder = onnx.load(str(tiny_export / "onnx" / "vision_encoder.onnx"))
    assert [i.name for i in encoder.graph.input] == ["pixel_values"]
    assert [o.name for o in encoder.graph.output] == ["image_embeddings", "image_positional_embeddings"]
    decoder = onnx.load(str(tiny_export / "onnx" / "prompt_encoder_mask_decoder.onnx"))
    required = ["image_embeddings", "image_positional_embeddings", "input_points", "input_labels"]
    assert [i.name for i in decoder.graph.input] == required + ["input_masks", "has_input_masks"]
    assert [o.name for o in decoder.graph.output] == ["iou_scores", "pred_masks"]
    defaults = {t.name for t in decoder.graph.initializer}
    assert {"input_masks", "has_input_masks"} <= defaults and not set(required) & defaults
    points = next(i for i in decoder.graph.input if i.name == "input_points").type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in points] == [False, True, True, False]  # (1, K, N, 2)
    assert not (tiny_export / ENCODER.file(quantized=True)).exists()  # quantize=False


def test_onnx_backend_equals_pytorch_for_boxes_clicks_and_their_rounds(tiny_export):
    """The same frames and prompts through both backends: a box (with the model's ellipse prompt made
    inside the graph), clicks alone, K boxes at once, and a session of correction rounds."""
    torch_seg = PolypSegmenter.from_pretrained(str(tiny_export), device="cpu")
    onnx_seg = PolypSegmenter.from_pretrained(str(tiny_export), backend="onnx")
    assert torch_seg.mask_prompt == onnx_seg.mask_prompt == "ellipse"
    for image, box, clicks in probe_frames():
        a, b = torch_seg.embed(image), onnx_seg.embed(image)
        assert relative_gap(a.embedding, b.embedding) < 1e-4
        two_boxes = np.concatenate([box, box + 8])
        for prompt in ({"boxes": box}, {"clicks": clicks}, {"boxes": two_boxes}, {"boxes": box, "clicks": clicks}):
            expected, got = torch_seg.session_logits(a, **prompt), onnx_seg.session_logits(b, **prompt)
            assert expected.shape == got.shape
            assert relative_gap(expected, got) < 1e-3, prompt


def test_the_graph_alone_makes_the_models_ellipse_prompt_from_a_box(tiny_export):
    """A runtime that passes only transformers.js's four inputs (a box as corners 2, 3) gets the
    model's own prompting: the same logits as the library's road, which makes the ellipse in Python."""
    import onnxruntime as ort

    seg = PolypSegmenter.from_pretrained(str(tiny_export), device="cpu")
    image, box, _ = probe_frames()[0]
    embedded = seg.embed(image)
    expected = seg.low_res_logits(embedded, box)
    encoder = ort.InferenceSession(str(tiny_export / ENCODER.file()))
    decoder = ort.InferenceSession(str(tiny_export / DECODER.file()))
    pixels, _ = seg.prep.pixel_values([seg.as_image(image)])
    embeddings, positional = encoder.run(None, {"pixel_values": pixels.numpy()})
    from polyp_sam_hf.data.preprocessing import scale_boxes
    corners = scale_boxes(box, embedded.original, embedded.reshaped).reshape(1, 1, 2, 2).astype(np.float32)
    _, low_res = decoder.run(None, {"image_embeddings": embeddings, "image_positional_embeddings": positional,
                                    "input_points": corners, "input_labels": np.array([[[2, 3]]], np.int64)})
    assert relative_gap(expected, torch.from_numpy(low_res[0, :, 0])) < 1e-3
    # and without the ellipse (has_input_masks 1, an empty mask given) the logits differ: the prompt is there
    _, plain = decoder.run(None, {"image_embeddings": embeddings, "image_positional_embeddings": positional,
                                  "input_points": corners, "input_labels": np.array([[[2, 3]]], np.int64),
                                  "input_masks": np.full((1, 1, 64, 64), -20, np.float32),
                                  "has_input_masks": np.ones(1, np.float32)})
    assert relative_gap(expected, torch.from_numpy(plain[0, :, 0])) > 1e-2


def test_the_check_refuses_graphs_of_other_weights(tiny_export, tmp_path):
    """One wrong weight in the source: the float32 check refuses, naming the folder."""
    model, processor = load_model_and_processor(str(tiny_export))
    with torch.no_grad():
        model.mask_decoder.output_hypernetworks_mlps[0].proj_out.weight.mul_(1.5)
    with pytest.raises(ExportCheckError, match="float32 ONNX graphs for shown-here disagree"):
        check_graphs(PolypSegmenter(model, processor, "cpu"), tiny_export, quantized=False, shown_as="shown-here")


def test_a_refused_int8_check_leaves_nothing_behind(test_model_dirs, tmp_path):
    """The untrained micro model's int8 masks do not agree with PyTorch's (its logits are all near 0):
    refused, and no onnx/ folder is left, not even the float32 graphs that passed."""
    folder = tmp_path / "model"
    model, processor = load_model_and_processor(str(test_model_dirs["micro-sam-test"]))
    save_pretrained_atomic(model, processor, folder)
    with pytest.raises(ExportCheckError, match="int8 ONNX graphs .* mask Dice"):
        export_onnx(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json", "model.safetensors",
                                                                "preprocessor_config.json", "processor_config.json"])


def test_a_damaged_or_mismatched_onnx_folder_is_refused_with_the_file_named(tiny_export, tmp_path):
    broken = tmp_path / "broken"
    (broken / "onnx").mkdir(parents=True)
    (broken / "config.json").write_text((tiny_export / "config.json").read_text())
    with pytest.raises(ModelLoadError, match=r"vision_encoder.onnx is missing.*--onnx"):
        OnnxSam(broken)
    (broken / ENCODER.file()).write_bytes(b"not a graph")
    (broken / DECODER.file()).write_bytes((tiny_export / DECODER.file()).read_bytes())
    with pytest.raises(ModelLoadError, match="vision_encoder.onnx is not a readable ONNX graph"):
        OnnxSam(broken)
    # the two files swapped: each takes the other's inputs
    (broken / ENCODER.file()).write_bytes((tiny_export / DECODER.file()).read_bytes())
    with pytest.raises(ModelLoadError, match="vision_encoder.onnx takes image_embeddings"):
        OnnxSam(broken)
    with pytest.raises(ConfigError, match="local folder with onnx/"):
        PolypSegmenter.from_pretrained("tiny-sam", backend="onnx")
    with pytest.raises(ConfigError, match="Unknown backend 'onnx-fp16'. Valid backends: torch, onnx, onnx-int8"):
        PolypSegmenter.from_pretrained(str(tiny_export), backend="onnx-fp16")


def test_prompt_free_and_gpu_calls_say_the_onnx_backend_cannot(tiny_export):
    seg = PolypSegmenter.from_pretrained(str(tiny_export), backend="onnx")
    image, _, _ = probe_frames()[0]
    with pytest.raises(ConfigError, match="prompt-free pass .* PyTorch backend"):
        seg.logits(seg.embed(image), None)
    with pytest.raises(ConfigError, match="runs on the CPU"):
        PolypSegmenter.from_pretrained(str(tiny_export), backend="onnx", device="cuda")


def test_missing_onnxruntime_is_one_line(monkeypatch, tiny_export):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "polyp-sam-hf\[onnx\]"'):
        OnnxSam(tiny_export)


def test_evaluate_and_predict_run_the_onnx_backend(tiny_export, prepared_demo, tmp_path):
    """`evaluate --backend onnx` scores as the PyTorch backend does (same Dice to 1e-4) and records the
    backend; `predict --backend onnx` writes the same mask."""
    scores = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / backend
        result = subprocess.run([sys.executable, "-m", "polyp_sam_hf", "evaluate", "--model_name_or_path",
                                 str(tiny_export), "--data", str(prepared_demo), "--output_dir", str(out),
                                 "--device", "cpu", "--backend", backend], capture_output=True, text=True,
                                cwd=REPO_ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["settings"]["backend"] == backend
        scores[backend] = metrics["results"]["model"]["box"]["0.0"]["all"]["dice"]
    assert scores["onnx"] == pytest.approx(scores["torch"], abs=1e-4)
    from PIL import Image

    from polyp_sam_hf.commands.predict import run_predict

    image, box, clicks = probe_frames()[1]
    Image.fromarray(image).save(tmp_path / "frame.png")
    masks = {}
    for backend in ("torch", "onnx"):
        [written] = run_predict(str(tiny_export), tmp_path / "frame.png", tmp_path / f"pred-{backend}", box.tolist(),
                                device="cpu", clicks=clicks, backend=backend)
        masks[backend] = np.asarray(Image.open(written))
    assert masks["onnx"].any() and (masks["onnx"] == masks["torch"]).mean() > 0.999


def test_mobile_sam_export_int8_and_float32_agree_with_pytorch_on_a_real_frame(mobile_sam_upload, converted,
                                                                               samples_root):
    """Converted MobileSAM (TinyViT) exported by the command: four files with the card naming them, and
    on a real frame the float32 backend's logits within 1e-3 of PyTorch's, the int8 mask close to PyTorch's."""
    from PIL import Image

    names = sorted(p.name for p in (mobile_sam_upload / "onnx").iterdir())
    assert names == sorted(Path(g.file(q)).name for g in (ENCODER, DECODER) for q in (False, True))
    card = (mobile_sam_upload / "README.md").read_text()
    assert "onnx/vision_encoder_quantized.onnx" in card and 'backend="onnx-int8"' in card
    frame = samples_root / "pranet" / "TrainDataset" / "images" / "20.jpg"
    image = np.asarray(Image.open(frame).convert("RGB"))
    polyp = np.asarray(Image.open(str(frame).replace("images", "masks")).convert("L")) > 127
    ys, xs = np.nonzero(polyp)
    box = np.array([[xs.min(), ys.min(), xs.max(), ys.max()]], np.float32)  # the polyp's box
    click = (float(xs.mean()), float(ys.mean()), 1)
    torch_seg = PolypSegmenter.from_pretrained(str(converted("mobile-sam")), device="cpu")
    expected = torch_seg.session_logits(torch_seg.embed(image), box, [click])
    for backend in ("onnx", "onnx-int8"):
        seg = PolypSegmenter.from_pretrained(str(mobile_sam_upload), backend=backend)
        got = seg.session_logits(seg.embed(image), box, [click])
        if backend == "onnx":
            assert relative_gap(expected, got) < 1e-3
        else:  # measured 0.981 for this frame's box and click (0.86 with the convolutions quantized too)
            assert dice(to_mask(expected), to_mask(got)) >= 0.97


def test_onnx_runtime_runs_every_gelu_of_the_exported_graphs_as_one_kernel(mobile_sam_upload, tmp_path):
    """The export writes each exact GELU in the order ONNX Runtime fuses (`gelu_in_fused_order`): in the
    graphs ONNX Runtime makes of the four files, no Erf is left and a Gelu (or BiasGelu, the bias
    added in the same kernel) stands for each (TinyViT's 23 and the decoder's 4); the exporter's own
    order leaves them unfused, element-wise passes that cost the int8 encoder about 30% of its time."""
    import onnx
    import onnxruntime as ort

    for graph in sorted((mobile_sam_upload / "onnx").iterdir()):
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / graph.name)
        ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        ops = [node.op_type for node in onnx.load(str(tmp_path / graph.name)).graph.node]
        written = [node.op_type for node in onnx.load(str(graph)).graph.node]
        gelus = ops.count("Gelu") + ops.count("BiasGelu")
        assert ops.count("Erf") == 0 and gelus == written.count("Erf") > 0, graph.name


@pytest.mark.parametrize("name", ["tiny-sam", "micro-tinyvit-sam-test"])
def test_the_graphs_mask_decoder_is_transformers_single_mask_decoder(name):
    """`SingleMaskDecoder` (the decoder graph's channels-last upscaling) gives transformers'
    `SamMaskDecoder(multimask_output=False)`'s logits and IoU for several prompts of a frame: a block
    put in the wrong place, a weight in the wrong order or the wrong mask token would not."""
    model, _ = load_model_and_processor(name)
    model.eval()
    config = model.config.prompt_encoder_config
    side, channels = config.image_size // config.patch_size, config.hidden_size
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(1, channels, side, side, generator=generator)
    sparse = torch.randn(1, 3, 4, channels, generator=generator)
    dense = torch.randn(1, channels, side, side, generator=generator)
    positional = model.get_image_wide_positional_embeddings()
    with torch.no_grad():
        expected = model.mask_decoder(image_embeddings=embeddings, image_positional_embeddings=positional,
                                      sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                      multimask_output=False)
        got = SingleMaskDecoder(model.mask_decoder)(embeddings, positional, sparse, dense)
    assert got[0].shape == expected[0].shape == (1, 3, 1, 4 * side, 4 * side)
    assert relative_gap(expected[0], got[0]) < 1e-5
    torch.testing.assert_close(got[1], expected[1])


def test_export_graphs_names_the_part_that_cannot_be_traced(tiny_export, tmp_path, monkeypatch):
    model, _ = load_model_and_processor(str(tiny_export))

    def fail(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::example\nmore lines")

    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(ExportCheckError, match="image encoder cannot be traced to ONNX: Unsupported operator"):
        export_graphs(model, tmp_path)


def test_a_full_size_sam_vit_base_exports_and_runs(tmp_path):
    """SAM ViT-B's architecture (random weights, 1024 px, windowed and global attention): traced, checked
    against PyTorch inside `export_onnx` (float32; an untrained model's int8 masks are noise), and run
    by the backend with the encoder's output as PyTorch's."""
    folder = tmp_path / "vit-b"
    model, processor = load_model_and_processor("random-sam-vit-base")
    save_pretrained_atomic(model, processor, folder)
    del model
    written = export_onnx(folder, quantize=False)
    assert [p.name for p in written] == ["prompt_encoder_mask_decoder.onnx", "vision_encoder.onnx"]
    assert (folder / ENCODER.file()).stat().st_size > 300 * 2**20  # ViT-B's 90 M encoder weights, float32
    seg = PolypSegmenter.from_pretrained(str(folder), backend="onnx")
    image, box, _ = probe_frames()[0]
    assert seg.session_logits(seg.embed(image), box).shape == (1, *image.shape[:2])


def test_the_app_segments_with_the_onnx_backend(tiny_export, tmp_path):
    """The app's own segment call (memoised embedding, a box then a click) on the ONNX backend writes
    the mask the PyTorch backend writes; an unknown backend flag is refused with the choices."""
    from PIL import Image

    from polyp_sam_hf.commands.app import AppArguments
    from polyp_sam_hf.publishing.gradio_demo import EmbeddingMemo, segment

    image, box, clicks = probe_frames()[0]
    text = ",".join(str(float(v)) for v in box[0])
    masks = {}
    for backend in ("torch", "onnx"):
        seg = PolypSegmenter.from_pretrained(str(tiny_export), device="cpu", backend=backend)
        memo = EmbeddingMemo(seg)
        segment(seg, image, text, tmp_path, memo)
        _, path = segment(seg, image, text, tmp_path, memo, f"{clicks[0][0]},{clicks[0][1]},1")
        masks[backend] = np.asarray(Image.open(path))
    assert (masks["onnx"] == masks["torch"]).mean() > 0.999
    with pytest.raises(ConfigError, match="backend 'tensorrt' is not one of: onnx, onnx-int8, torch"):
        AppArguments(backend="tensorrt")
