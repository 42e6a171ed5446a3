"""Loading SAM: built-in models made in code, local model folders and Hub ids, each checked before it loads."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from transformers import PretrainedConfig, SamConfig, SamImageProcessor, SamModel, SamProcessor

from polyp_sam_hf.core.errors import CheckpointError, ModelLoadError
from polyp_sam_hf.models.attention import set_vision_attention
from polyp_sam_hf.models.modeling_tinyvit_sam import TINY_VIT_5M, TinyViTSamConfig, TinyViTSamModel

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Built-in models: built from a SamConfig in code, no download. For the demo and the tests.
# --------------------------------------------------------------------------------------------


def tiny_sam_config(
    image_size: int = 128,
    patch_size: int = 8,
    vision_hidden: int = 64,
    vision_layers: int = 2,
    prompt_hidden: int = 32,
) -> SamConfig:
    """A SAM of the real architecture at a size a CPU trains in minutes.

    The image embedding grid is `image_size // patch_size` on a side, the low-resolution masks four
    times that; `prompt_hidden` is the embedding width shared by the encoder's neck, the prompt
    encoder and the mask decoder.
    """
    return SamConfig(
        vision_config=dict(
            hidden_size=vision_hidden,
            num_hidden_layers=vision_layers,
            num_attention_heads=4,
            image_size=image_size,
            patch_size=patch_size,
            output_channels=prompt_hidden,
            window_size=4,
            global_attn_indexes=[vision_layers - 1],
            mlp_dim=vision_hidden * 2,
            num_pos_feats=prompt_hidden // 2,
        ),
        prompt_encoder_config=dict(
            hidden_size=prompt_hidden, image_size=image_size, patch_size=patch_size
        ),
        mask_decoder_config=dict(
            hidden_size=prompt_hidden,
            mlp_dim=prompt_hidden * 2,
            num_attention_heads=2,
            iou_head_hidden_dim=prompt_hidden,
        ),
    )


def tiny_vit_sam_config(image_size: int = 1024, patch_stride: int = 4) -> TinyViTSamConfig:
    """MobileSAM's architecture (TinyViT-5M, stride 16, SAM's prompt encoder and decoder) at any
    input size that is a multiple of 16; `patch_stride=1` gives LiteMedSAM's (stride 4)."""
    stride = 4 * patch_stride
    return TinyViTSamConfig(
        vision_config=dict(image_size=image_size, patch_size=stride, output_channels=256,
                           hidden_size=64, num_hidden_layers=0, num_attention_heads=1),
        prompt_encoder_config=dict(image_size=image_size, patch_size=stride),
        # segment-anything's two-way transformer normalises with LayerNorm's default eps 1e-5;
        # transformers' SamMaskDecoderConfig defaults to 1e-6 (docs/real-weights.md)
        mask_decoder_config=dict(layer_norm_eps=1e-5),
        tiny_vit={**TINY_VIT_5M, "patch_stride": patch_stride},
    )


def processor_for(config: SamConfig, image_mean: list[float] | None = None,
                  image_std: list[float] | None = None) -> SamProcessor:
    """A `SamProcessor` sized to a config: longest side and padding to the encoder's input size,
    low-resolution mask size to the decoder's output (four times the embedding grid); normalisation
    by `image_mean` / `image_std` ([0, 1] units), SAM's ImageNet values when not given."""
    size = config.vision_config.image_size
    low_res = 4 * (size // config.vision_config.patch_size)
    return SamProcessor(
        image_processor=SamImageProcessor(
            size={"longest_edge": size},
            pad_size={"height": size, "width": size},
            mask_size={"longest_edge": low_res},
            mask_pad_size={"height": low_res, "width": low_res},
            **({"image_mean": list(image_mean)} if image_mean is not None else {}),
            **({"image_std": list(image_std)} if image_std is not None else {}),
        )
    )


# model folders whose config.json names another model_type than SAM's own
MODEL_CLASSES: dict[str, type[SamModel]] = {"tinyvit_sam": TinyViTSamModel}


BUILTIN_MODELS: dict[str, Callable[[], SamConfig]] = {
    # the demo's model: 128 px input, 16 x 16 embeddings, about 150k parameters
    "tiny-sam": tiny_sam_config,
    # ViT-B and ViT-L shapes with random weights, for benchmarks without a download
    "random-sam-vit-base": lambda: SamConfig(),
    "random-sam-vit-large": lambda: SamConfig(
        vision_config=dict(
            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
            global_attn_indexes=[5, 11, 17, 23],
        )
    ),
}


def model_class_for(name: str) -> type[SamModel]:
    """The class that loads a model folder or Hub id: `SamModel`, or one of `MODEL_CLASSES` by the
    `model_type` in its config.json (e.g. a converted MobileSAM). Reads config.json only."""

    try:
        config_dict, _ = PretrainedConfig.get_config_dict(name)
    except OSError:
        return SamModel  # not reachable: SamModel.from_pretrained gives the error the user needs
    return MODEL_CLASSES.get(config_dict.get("model_type"), SamModel)




def _check_local_folder(path: Path) -> None:
    """A local model folder holds what `from_pretrained` needs, or the error says what is missing."""
    if not path.is_dir():
        raise ModelLoadError(f"{path} is a file; --model_name_or_path takes a model folder, a Hub id or a built-in name.")
    if not (path / "config.json").is_file():
        if (path / "best" / "config.json").is_file():
            raise ModelLoadError(f"{path} is a training run, not a model: pass {path / 'best'} (the best "
                                 "validation weights).")
        raise ModelLoadError(f"{path} has no config.json: it is not a saved SamModel folder.")
    if not any((path / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json",
                                              "pytorch_model.bin")):
        raise ModelLoadError(f"{path} has a config.json but no weights (model.safetensors): copy the whole folder.")
    if not any((path / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
        raise ModelLoadError(f"{path} has no preprocessor_config.json (the processor's settings): copy it from the "
                             "model this folder came from, or save the processor with the model.")


def is_hub_id(name: str) -> bool:
    """`org/name` that names no local path: a Hub repository id."""
    if Path(name).exists() or name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _check_hub_id(name: str) -> None:
    """A name that is no local path must be a Hub id that is cached or can be downloaded now.

    Whether it can be downloaded is asked of huggingface_hub itself (its offline mode, proxies and
    errors), by fetching the small config.json first: an offline machine gets this message at once
    instead of a traceback from deep inside `from_pretrained`.
    """
    builtins = ", ".join(BUILTIN_MODELS)
    parent = Path(name).expanduser().parent
    if name.startswith((".", "/", "~")) or (str(parent) != "." and parent.is_dir()):
        raise ModelLoadError(_missing_folder(Path(name).expanduser()))
    if not is_hub_id(name):
        raise ModelLoadError(f"{name} does not exist: there is no such folder, and it is neither a Hub id "
                             f"(org/name) nor a built-in model ({builtins}).")
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false")
    try:
        if not offline:
            hf_hub_download(name, "config.json")
            return
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise ModelLoadError(f"The Hub has no model {name!r} this machine may read ({type(err).__name__}): "
                             f"check the id, or log in (`hf auth login`) for a private or gated one.") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, OSError):
        pass  # not cached and not downloadable now: the message below
    raise ModelLoadError(
        f"No folder {name} exists here, and the Hub model {name!r} is not in the local cache while "
        f"{'HF_HUB_OFFLINE is set' if offline else 'the Hub cannot be reached'}. Download it once with "
        f"network access (`hf download {name}`), or pass --model_name_or_path with a saved model folder. To try "
        f"the library without weights, use a built-in model ({builtins}), e.g. `--config configs/demo.yaml`."
    )


def _missing_folder(path: Path) -> str:
    """The message for a model path that does not exist: the model folders beside it, the closest first."""

    parent = path.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    models = sorted(str(p) for p in parent.iterdir() if (p / "config.json").is_file()) if parent.is_dir() else []
    close = difflib.get_close_matches(str(path), models, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    listed = f" Model folders in {parent}: {', '.join(models)}." if models else ""
    return f"The folder {path} does not exist.{hint}{listed}"


def check_finite_weights(model: torch.nn.Module, where: str) -> None:
    """Refuse weights holding NaN or infinity: they give Dice 0 and empty masks without a word.

    Raises:
        ValueError: names the first non-finite tensor and `where` it was loaded from.
    """
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{where}: the weight {name} holds NaN or infinite values; the checkpoint is damaged "
                             "(or a run diverged): use an earlier checkpoint.")


def check_model_available(name: str) -> str:
    """Fail at once, before any data is read, when `name` cannot be loaded: a built-in, a complete
    local model folder, or a Hub id that is cached or downloadable now. Returns the name to load.

    Raises:
        ModelLoadError: what is missing and what to do.
    """
    if name in BUILTIN_MODELS:
        return name
    path = Path(name).expanduser()
    if path.exists():
        _check_local_folder(path)
        return str(path)
    _check_hub_id(name)
    return name


def load_model_and_processor(name: str, seed: int = 0, vision_attention: str = "fused"
                             ) -> tuple[SamModel, SamProcessor]:
    """Load SAM and its processor from a built-in name, a local folder or a Hub id.

    Built-in names (`BUILTIN_MODELS`) are initialised randomly from `seed`. A ViT encoder's
    attention runs as `vision_attention` says (`attention.VISION_ATTENTION`: `fused` computes
    transformers' scores without the bias tensor; `transformers` keeps transformers' own); the
    weights and what `save_pretrained` writes are the same either way.

    Raises:
        ModelLoadError: no such folder, a folder lacking a file, a damaged weights file, or a Hub
            model that is neither cached nor downloadable now; the message says what to do.
        ValueError: the weights hold NaN or infinite values.
    """
    if name in BUILTIN_MODELS:
        config = BUILTIN_MODELS[name]()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = MODEL_CLASSES.get(config.model_type, SamModel)(config)
        set_vision_attention(model, vision_attention)
        return model, processor_for(config)
    path = Path(name).expanduser()
    name = check_model_available(name)
    try:
        model = model_class_for(name).from_pretrained(name)
        processor = SamProcessor.from_pretrained(name)
    except Exception as err:  # safetensors and json parsers raise their own types for damaged files
        if not path.exists():
            if isinstance(err, OSError):
                raise ModelLoadError(f"Cannot load the model {name!r}: {err}") from None
            raise
        raise ModelLoadError(f"Cannot read the model in {path}: {type(err).__name__}: {err}. A file is damaged or "
                             "truncated (model.safetensors, config.json): copy the folder again.") from None
    check_finite_weights(model, name)
    set_vision_attention(model, vision_attention)
    return model, processor
