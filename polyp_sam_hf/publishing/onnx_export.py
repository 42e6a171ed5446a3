"""`onnx/` beside an exported model: the two graphs of `models.onnx_graphs`, float32 and int8, checked.

    polyp-sam export --model_name_or_path runs/x/best --repo_id ORG/NAME --output_dir upload/ --onnx

The graphs are traced from the exported folder itself (the weights a Hub user downloads), with the
library's fused attention for SAM ViT encoders (`models.attention`: transformers' arithmetic with no
bias tensor; transformers' own attention does not pass torch.export's decomposition). Before anything is written the check runs both variants under ONNX
Runtime against PyTorch on probe frames and prompts (a box; a box with a click and the previous
round's logits): float32 logits within `ONNX_RTOL` of the logits' scale, int8 masks at Dice
`INT8_MIN_DICE` or more with PyTorch's. A refused check leaves nothing behind.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from polyp_sam_hf.core.errors import ExportCheckError
from polyp_sam_hf.core.files import replace_atomically, staging_folder
from polyp_sam_hf.models.loading import load_model_and_processor
from polyp_sam_hf.models.onnx_graphs import (
    DECODER,
    ENCODER,
    GRAPHS,
    ONNX_DIR,
    DecoderGraph,
    EncoderGraph,
    GraphLayout,
)
from polyp_sam_hf.models.onnx_runtime import OnnxSam, import_onnxruntime
from polyp_sam_hf.models.segmenter import PolypSegmenter, to_mask

logger = logging.getLogger(__name__)

# How far ONNX Runtime's float32 logits may lie from PyTorch's, as a fraction of the logits' scale
# (their largest magnitude: an untrained model's logits are tiny, and its graphs are checked as closely). The graph is the same arithmetic, but ONNX Runtime fuses
# and orders its sums its own way (layer norms, GELU, attention): a few 1e-6 of the scale through a
# SAM decoder and 1e-5 through a ViT encoder were measured (tests/test_onnx.py). 1e-3 leaves a margin
# that still refuses a wrong graph (a wrong weight moves logits by far more: tests/test_onnx.py).
ONNX_RTOL = 1e-3
# int8 weights change the logits a little everywhere; what must survive is the mask.
INT8_MIN_DICE = 0.99


def export_graphs(model: torch.nn.Module, folder: Path) -> list[Path]:
    """Trace `model` into `folder/onnx/`: the float32 graphs, each GELU in the order ONNX Runtime fuses
    (`with_defaults` comes after quantizing)."""
    config = model.config.prompt_encoder_config
    side, grid = config.image_size, 4 * (config.image_size // config.patch_size)
    pixels = torch.zeros(1, 3, side, side)
    with torch.no_grad():
        embeddings, positional = EncoderGraph(model)(pixels)
    (folder / ONNX_DIR).mkdir(parents=True, exist_ok=True)
    encoder_file = _trace(EncoderGraph(model), (pixels,), folder, ENCODER, None)
    k, n = torch.export.Dim("prompts"), torch.export.Dim("points")
    example = (embeddings, positional, torch.full((1, 2, 3, 2), side / 2), torch.tensor([[[1, 2, 3], [0, 2, 3]]]),
               torch.zeros(1, 1, grid, grid), torch.zeros(1))
    dynamic = {"image_embeddings": None, "image_positional_embeddings": None, "input_points": {1: k, 2: n},
               "input_labels": {1: k, 2: n}, "input_masks": None, "has_input_masks": None}
    files = [encoder_file, _trace(DecoderGraph(model), example, folder, DECODER, dynamic)]
    for graph_file in files:
        gelu_in_fused_order(graph_file)
    return files


def with_defaults(decoder_file: Path, grid: int) -> None:
    """Give the decoder's optional inputs defaults (ONNX initializers of the same names: no mask
    given), so a runtime passing only transformers.js's four inputs runs the graph."""
    onnx = _import_onnx()
    graph = onnx.load(str(decoder_file))
    graph.graph.initializer.extend([onnx.numpy_helper.from_array(np.zeros((1, 1, grid, grid), np.float32), "input_masks"),
                                    onnx.numpy_helper.from_array(np.zeros(1, np.float32), "has_input_masks")])
    onnx.save(graph, str(decoder_file))


def weight_products(graph_file: Path) -> list[str]:
    """The names of a graph's matrix products by a weight matrix (a 2-D initializer as the second
    factor): what int8 quantization takes. The decoder's token-side products by per-head weight
    stacks (3-D, `token_side_attention`) are over a few token rows and stay float32."""
    graph = _import_onnx().load(str(graph_file), load_external_data=False).graph
    matrices = {tensor.name for tensor in graph.initializer if len(tensor.dims) == 2}
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.input[1] in matrices]


def quantize_graphs(folder: Path) -> list[Path]:
    """`*_quantized.onnx` beside each graph: ONNX Runtime's dynamic quantization of the matrix
    products by weight matrices (`weight_products`; int8 weights per output channel, the activations
    quantized as they come), what transformers.js loads as `dtype: "q8"`. The convolutions stay
    float32: quantized too, MobileSAM's masks on six real Kvasir-SEG frames agreed with PyTorch's at
    Dice 0.86-0.96; with the matrix products alone, at 0.95-0.998 (benchmarks/onnx_runtime.py scores
    the difference over test frames)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    written = []
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice to the root logger for every graph
    try:
        for layout in GRAPHS:
            target = folder / layout.file(quantized=True)
            source = folder / layout.file()
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"], nodes_to_quantize=weight_products(source))
            written.append(target)
    finally:
        root.setLevel(level)
    return written


def probe_frames(size: int = 160) -> list[tuple[np.ndarray, np.ndarray, list[tuple[float, float, int]]]]:
    """Two fixed frames (a bright disc on a textured background), each with a box and two clicks."""
    rng = np.random.default_rng(0)
    frames = []
    for cx, cy, r in ((70, 80, 40), (100, 60, 30)):
        yy, xx = np.mgrid[:size, :size]
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        image = rng.integers(40, 120, (size, size, 3)).astype(np.uint8)
        image[disc] = (220, 120, 110)
        box = np.array([[cx - r - 4, cy - r - 4, cx + r + 4, cy + r + 4]], np.float32)
        frames.append((image, box, [(cx, cy, 1), (cx - r - 2, cy - r - 2, 0)]))
    return frames


def check_graphs(source: PolypSegmenter, folder: Path, quantized: bool, shown_as: Path | str) -> float:
    """The worst disagreement of `folder/onnx/`'s graphs with `source` on the probe frames: float32,
    the logits' difference as a fraction of their scale; int8, 1 - the masks' Dice.

    Raises:
        ExportCheckError: beyond `ONNX_RTOL` (float32) or below `INT8_MIN_DICE` (int8).
    """
    runtime = PolypSegmenter(OnnxSam(folder, quantized=quantized), source.processor, "cpu", source.mask_prompt)
    worst = 0.0
    for image, box, clicks in probe_frames():
        expected_embedding, got_embedding = source.embed(image), runtime.embed(image)
        for prompt in ({"boxes": box}, {"boxes": box, "clicks": clicks}):
            expected = source.session_logits(expected_embedding, **prompt)
            got = runtime.session_logits(got_embedding, **prompt)
            if quantized:
                a, b = to_mask(expected), to_mask(got)
                dice = float(2 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))
                worst = max(worst, 1 - dice)
            else:
                worst = max(worst, float((expected - got).abs().max()) / max(float(expected.abs().max()), 1e-12))
    variant = "int8" if quantized else "float32"
    limit = 1 - INT8_MIN_DICE if quantized else ONNX_RTOL
    if not worst <= limit:  # NaN fails too
        measure = f"mask Dice {1 - worst:.4f} (at least {INT8_MIN_DICE})" if quantized else \
            f"logits {worst:.3g} of their scale away (at most {ONNX_RTOL})"
        raise ExportCheckError(f"The {variant} ONNX graphs for {shown_as} disagree with PyTorch: {measure}; "
                               "nothing was written.")
    return worst


def export_onnx(model_dir: str | Path, out_dir: str | Path | None = None, quantize: bool = True,
                shown_as: str | Path | None = None) -> list[Path]:
    """Write `onnx/` into `out_dir` (default: `model_dir`), checked first (`check_graphs`).

    Raises:
        ExportCheckError: a part of the model cannot be traced (named), or a check fails; nothing is written.
    """
    import_onnxruntime()
    model_dir = Path(model_dir)
    out_dir = Path(out_dir or model_dir)
    model, processor = load_model_and_processor(str(model_dir))
    model.eval()
    source = PolypSegmenter(model, processor, "cpu")
    staging = staging_folder(out_dir / ONNX_DIR, "onnx-tmp")
    work = Path(tempfile.mkdtemp(prefix="onnx-export-"))
    try:
        shutil.copy(model_dir / "config.json", work / "config.json")
        export_graphs(model, work)
        if quantize:
            quantize_graphs(work)
        config = model.config.prompt_encoder_config
        for quantized in (False, True) if quantize else (False,):
            with_defaults(work / DECODER.file(quantized), 4 * (config.image_size // config.patch_size))
        for quantized in (False, True) if quantize else (False,):
            worst = check_graphs(source, work, quantized, shown_as or out_dir)
            logger.info("ONNX %s graphs agree with PyTorch (worst %.3g)", "int8" if quantized else "float32", worst)
        shutil.move(str(work / ONNX_DIR), staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    replace_atomically(staging, out_dir / ONNX_DIR)
    return sorted((out_dir / ONNX_DIR).glob("*.onnx"))


def _import_onnx():
    try:
        import onnx
        import onnx.numpy_helper
    except ImportError:
        raise ExportCheckError('ONNX export needs onnx and onnxscript: pip install "polyp-sam-hf[onnx]".') from None
    return onnx


def _trace(graph: torch.nn.Module, example: tuple, folder: Path, layout: GraphLayout, dynamic: dict | None) -> Path:
    """torch.onnx.export (the torch.export-based exporter) to `folder`'s file of `layout`, with the part
    that failed named."""
    graph.eval()  # the wrapper too, not only the model inside it
    target = folder / layout.file()
    try:
        torch.onnx.export(graph, example, str(target), input_names=list(layout.all_inputs),
                          output_names=list(layout.outputs),
                          dynamic_shapes=dynamic, dynamo=True, opset_version=18, external_data=False,
                          verbose=False)
    except Exception as error:  # the exporter's own error types, with pages of trace
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ExportCheckError(f"The model's {layout.title} cannot be traced to ONNX: {first[:300]}") from None
    return target


def gelu_in_fused_order(graph_file: Path) -> int:
    """Write each exact GELU of `graph_file` in the order ONNX Runtime fuses into one Gelu kernel.

    The exporter spells GELU in plain ONNX as `x * (0.5 * (1 + erf(x / sqrt 2)))`; ONNX Runtime's
    fusion knows `(x * (1 + erf(x / sqrt 2))) * 0.5`, the same product in another order. Unfused,
    its five element-wise passes (Div, Erf, Add, two Muls) cost MobileSAM's int8 image encoder about
    30% of its time on a CPU (benchmarks/onnx_runtime.py gives the times). Only the two Muls' inputs
    change: the file stays plain ONNX for any runtime, and the check after export compares its logits
    with PyTorch's as before.

    Returns:
        the number of GELUs reordered.
    """
    onnx = _import_onnx()
    model = onnx.load(str(graph_file))
    producer = {output: node for node in model.graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(node, op_type: str):
        users = consumers.get(node.output[0], [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    reordered = 0
    for erf in (node for node in model.graph.node if node.op_type == "Erf"):
        div = producer.get(erf.input[0])
        add = only_consumer(erf, "Add")
        scale = add and only_consumer(add, "Mul")  # 0.5 * (1 + erf)
        product = scale and only_consumer(scale, "Mul")  # x * that
        if div is None or div.op_type != "Div" or product is None or div.input[0] not in product.input:
            continue
        half = next(name for name in scale.input if name != add.output[0])
        scale.input[:] = [div.input[0], add.output[0]]  # x * (1 + erf)
        product.input[:] = [scale.output[0], half]  # that * 0.5
        reordered += 1
    if reordered:
        onnx.save(model, str(graph_file))
    return reordered
