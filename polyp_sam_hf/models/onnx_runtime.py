"""The ONNX Runtime backend: a model folder's `onnx/` graphs (`onnx_graphs`) run where PyTorch is not.

`OnnxSam` answers the two calls the library's one road makes of a `SamModel`
(`get_image_embeddings`, and the forward call of `segmenter.decode`), so `PolypSegmenter`,
`evaluate`, `predict` and the app run an export unchanged, and the quantized graphs are scored by
the same evaluation as the PyTorch model:

    seg = PolypSegmenter.from_pretrained("upload/", backend="onnx-int8")

`onnxruntime` is an optional dependency (`pip install "polyp-sam-hf[onnx]"`).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from transformers import SamPromptEncoderConfig

from polyp_sam_hf.core.errors import ConfigError, ModelLoadError
from polyp_sam_hf.core.threads import available_cores
from polyp_sam_hf.models.mask_prompts import CONFIG_KEY
from polyp_sam_hf.models.onnx_graphs import DECODER, ENCODER, GraphLayout, graph_prompts


def import_onnxruntime():
    """`onnxruntime`, or one line saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError('The ONNX backend needs onnxruntime: pip install "polyp-sam-hf[onnx]".') from None
    return onnxruntime


def open_graph(folder: Path, layout: GraphLayout, quantized: bool = False, threads: int | None = None):
    """An ONNX Runtime session on `folder`'s graph of `layout`, refused with the file named if it is
    missing, unreadable, or takes or gives other tensors than the layout's."""
    ort = import_onnxruntime()
    path = folder / layout.file(quantized)
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: export the model with `polyp-sam export --onnx` "
                             "(it writes onnx/ beside the weights).")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cores()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: the optional inputs' defaults are meant (onnx_graphs)
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own exception types for a damaged file
        raise ModelLoadError(f"{path} is not a readable ONNX graph ({str(error).splitlines()[0][:200]}); "
                             "export the model again with `polyp-sam export --onnx`.") from None
    required = tuple(i.name for i in session.get_inputs())
    overridable = {i.name for i in session.get_overridable_initializers()}
    given = tuple(o.name for o in session.get_outputs())
    if set(required) | (overridable & set(layout.optional)) != set(layout.all_inputs) or set(given) != set(layout.outputs):
        raise ModelLoadError(f"{path} takes {', '.join(required)} and gives {', '.join(given)}; this library's layout "
                             f"takes {', '.join(layout.all_inputs)} and gives {', '.join(layout.outputs)}. Export the model "
                             "again with `polyp-sam export --onnx`.")
    return session


class OnnxSam:
    """A SAM's `onnx/` graphs under ONNX Runtime, called as `PolypSegmenter` and `decode` call a SamModel.

    Args:
        folder: a model folder with `config.json` and `onnx/` (`polyp-sam export --onnx` writes it).
        quantized: the `_quantized` (int8) graphs instead of the float32 ones.
        threads: ONNX Runtime's threads (default: this process's share of the cores).
    """

    def __init__(self, folder: str | Path, quantized: bool = False, threads: int | None = None) -> None:
        folder = Path(folder)
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise ModelLoadError(f"{config_file} is missing: give the folder `polyp-sam export --onnx` wrote.")
        config = json.loads(config_file.read_text())
        # what the road reads of a model's config: the prompt encoder's sizes and the mask prompt
        self.config = SimpleNamespace(prompt_encoder_config=SamPromptEncoderConfig(**config["prompt_encoder_config"]),
                                      **{CONFIG_KEY: config.get(CONFIG_KEY)})
        self.folder, self.quantized = folder, quantized
        self.encoder = open_graph(folder, ENCODER, quantized, threads)
        self.decoder = open_graph(folder, DECODER, quantized, threads)
        self.positional: np.ndarray | None = None  # the same grid for every frame: kept from the first

    def to(self, device: str | torch.device) -> OnnxSam:
        if torch.device(device).type != "cpu":
            raise ConfigError(f"The ONNX backend runs on the CPU; got device {device}. Leave --device out or give cpu.")
        return self

    def eval(self) -> OnnxSam:
        return self

    def get_image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised pixels -> (B, C, h, w) image embeddings, one frame per call of the graph."""
        embeddings = []
        for frame in pixel_values.detach().cpu().float().numpy():
            embedding, self.positional = self.encoder.run(None, {"pixel_values": frame[None]})
            embeddings.append(torch.from_numpy(embedding[0]))
        return torch.stack(embeddings)

    def __call__(self, image_embeddings: torch.Tensor | None = None, multimask_output: bool = False,
                 input_boxes: torch.Tensor | None = None, input_points: torch.Tensor | None = None,
                 input_labels: torch.Tensor | None = None, input_masks: torch.Tensor | None = None,
                 pixel_values: torch.Tensor | None = None) -> SimpleNamespace:
        """`SamModel`'s forward for single-mask prompts: `pred_masks` (B, K, 1, 4h, 4w), `iou_scores` (B, K, 1).

        Raises:
            ConfigError: no prompt (a prompt-free model's pass has no ONNX graph), or a multimask call.
        """
        if input_boxes is None and input_points is None:
            raise ConfigError("The ONNX graphs take box and click prompts; a prompt-free pass (--prompt_mode none or "
                              "auto) runs only with the PyTorch backend.")
        if multimask_output:
            raise ConfigError("The ONNX graphs give one mask per prompt (multimask_output=False).")
        if image_embeddings is None:
            image_embeddings = self.get_image_embeddings(pixel_values)
        if self.positional is None:  # embeddings from a cache: run the encoder once for the grid
            side = self.config.prompt_encoder_config.image_size
            self.get_image_embeddings(torch.zeros(1, 3, side, side))
        masks, scores = [], []
        for b in range(image_embeddings.shape[0]):
            points, labels = graph_prompts(_frame(input_boxes, b), _frame(input_points, b), _frame(input_labels, b))
            feed = {"image_embeddings": _frame(image_embeddings, b).float().numpy(), "image_positional_embeddings":
                    self.positional, "input_points": points.numpy(), "input_labels": labels.numpy()}
            if input_masks is not None:
                feed["input_masks"] = _frame(input_masks, b).float().numpy()
                feed["has_input_masks"] = np.ones(1, np.float32)
            iou, low_res = self.decoder.run(None, feed)
            masks.append(low_res)
            scores.append(iou)
        # numpy's concatenation: torch.cat here cost about 1 ms a call (profiled), a twentieth of the int8 decoder
        return SimpleNamespace(pred_masks=torch.from_numpy(np.concatenate(masks)),
                               iou_scores=torch.from_numpy(np.concatenate(scores)))


def _frame(tensor: torch.Tensor | None, b: int) -> torch.Tensor | None:
    """Frame `b` of a batch of prompts or embeddings, on the CPU (None stays None)."""
    return None if tensor is None else tensor[b:b + 1].detach().cpu()
