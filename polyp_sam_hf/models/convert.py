"""Convert SAM-family checkpoints in Meta's naming (MobileSAM, LiteMedSAM) into model folders.

    polyp-sam convert --checkpoint mobile_sam.pt --arch mobile-sam --output_dir models/mobile-sam

The folder holds `config.json`, `model.safetensors`, `preprocessor_config.json` and the modelling
file; every command that takes `--model_name_or_path` takes it, and `AutoModel.from_pretrained(folder,
trust_remote_code=True)` loads it without this library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import SamProcessor

from polyp_sam_hf.core.errors import CheckpointError
from polyp_sam_hf.core.files import sha256_file
from polyp_sam_hf.core.registry import by_name, lookup
from polyp_sam_hf.models.loading import processor_for, tiny_vit_sam_config
from polyp_sam_hf.models.modeling_tinyvit_sam import TinyViTSamConfig, TinyViTSamModel

# Meta's segment-anything names -> transformers' SAM names, applied in order to each key after
# `image_encoder.` became `vision_encoder.` (the TinyViT keeps Meta's names below that).
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^image_encoder\.", "vision_encoder."),
    (r"^prompt_encoder\.pe_layer\.positional_encoding_gaussian_matrix$", "shared_image_embedding.positional_embedding"),
    (r"^prompt_encoder\.point_embeddings\.", "prompt_encoder.point_embed."),
    (r"^prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"^prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"^prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"^prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"^prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"^mask_decoder\.transformer\.norm_final_attn\.", "mask_decoder.transformer.layer_norm_final_attn."),
    (r"^(mask_decoder\.transformer\.layers\.\d+)\.norm(\d)\.", r"\1.layer_norm\2."),
    (r"^mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"^mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"^mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
    # the three-layer MLPs (hypernetworks, IoU head): layers.0/1/2 -> proj_in/layers.0/proj_out
    (r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\.layers\.0\.", r"\1.proj_in."),
    (r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\.layers\.1\.", r"\1.layers.0."),
    (r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\.layers\.2\.", r"\1.proj_out."),
)
# in the checkpoints but not in the model: TinyViT's ImageNet classification head
DROPPED = re.compile(r"^image_encoder\.(norm_head|head)\.")
# in the model but not the checkpoints: tied to shared_image_embedding.positional_embedding
TIED = {"prompt_encoder.shared_embedding.positional_embedding"}


def convert_key(key: str) -> str:
    """One of Meta's state-dict keys in transformers' `SamModel` naming."""
    for pattern, replacement in KEY_RULES:
        key = re.sub(pattern, replacement, key)
    return key


@dataclass(frozen=True)
class Arch:
    """A SAM-family architecture with public weights.

    Attributes:
        name: the `--arch` value.
        description: what it is, its licence, and a caveat for users.
        image_size: encoder input S (frames resized to longest side S, padded to S x S).
        patch_stride: TinyViT patch-embedding stride (4 or 1); the embedding grid is 64 either way.
        image_mean, image_std: per-channel normalisation in [0, 1] units.
        sha256: of the official checkpoint file.
        source: where the official file is published.
    """

    name: str
    description: str
    image_size: int
    patch_stride: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    sha256: str
    source: str
    license: str = "Apache-2.0"

    def config(self, checkpoint_sha256: str | None = None) -> TinyViTSamConfig:
        """The model config; `polyp_sam_origin` records the checkpoint's SHA-256 (the official one
        when not given) and whether it is the official file."""

        digest = checkpoint_sha256 or self.sha256
        config = tiny_vit_sam_config(self.image_size, self.patch_stride)
        config.polyp_sam_origin = {"arch": self.name, "checkpoint_sha256": digest, "source": self.source,
                                   "license": self.license, "official": digest == self.sha256}
        return config

    def processor(self) -> SamProcessor:

        return processor_for(self.config(), self.image_mean, self.image_std)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ARCHS: dict[str, Arch] = by_name(
    Arch(
        "mobile-sam",
        "MobileSAM (Zhang et al. 2023): TinyViT-5M distilled from SAM ViT-H, SAM's prompt encoder "
        "and mask decoder; 1024 px input, SAM's own preprocessing.",
        image_size=1024, patch_stride=4, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD,
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        source="ChaoningZhang/MobileSAM weights/mobile_sam.pt",
    ),
    Arch(
        "lite-medsam",
        "LiteMedSAM (MedSAM team): TinyViT-5M at 256 px trained on medical images. Its training data "
        "includes public polyp sets, so its scores on them may be inflated by overlap.",
        # LiteMedSAM min-max normalises each frame; dividing by 255 is the same for frames whose
        # pixels span 0..255 (docs/real-weights.md measures the difference)
        image_size=256, patch_stride=1, image_mean=(0.0, 0.0, 0.0), image_std=(1.0, 1.0, 1.0),
        sha256="79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76",
        source="bowang-lab/MedSAM LiteMedSAM lite_medsam.pth",
    ),
)


def get_arch(name: str) -> Arch:
    return lookup(ARCHS, name, "architecture", "architectures")


def load_meta_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors, loaded without running pickled code (`weights_only=True`).

    Raises:
        ValueError: the file is missing, not a torch checkpoint, or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"Cannot read {path} as a torch checkpoint ({type(err).__name__}: {err}).") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (a dict of name -> tensor is expected).")
    return state


def convert_state_dict(state: dict[str, torch.Tensor], model: TinyViTSamModel, name: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Rename Meta's keys and check them against `model`: same names, same shapes.

    Raises:
        ValueError: tensors missing, unexpected, or of another shape; the message lists them.
    """
    converted = {convert_key(k): v for k, v in state.items() if not DROPPED.match(k)}
    expected = {k: v.shape for k, v in model.state_dict().items() if k not in TIED}
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong = sorted(f"{k} {tuple(converted[k].shape)} (expected {tuple(expected[k])})"
                   for k in set(expected) & set(converted) if converted[k].shape != expected[k])
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("of the wrong shape", wrong)):
        if items:
            shown = ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")
            problems.append(f"{len(items)} tensors {label}: {shown}")
    if problems:
        raise CheckpointError(f"{name} does not match this architecture: " + "; ".join(problems) + ". "
                         "Check --arch (mobile-sam or lite-medsam) and that the file is complete.")
    return converted


def convert_checkpoint(checkpoint: str | Path, arch: str, output: str | Path) -> Path:
    """Write a model folder for a Meta-format checkpoint of `arch` (see `ARCHS`).

    A file whose SHA-256 differs from the official one is still converted (fine-tuned weights are
    legitimate), and the config records that it is not the official file.
    """
    spec = get_arch(arch)
    state = load_meta_state_dict(checkpoint)
    model = TinyViTSamModel(spec.config(sha256_file(checkpoint)))
    converted = convert_state_dict(state, model, str(checkpoint))
    model.load_state_dict(converted, strict=False)
    model.tie_weights()
    output = Path(output)
    model.save_pretrained(output)
    spec.processor().save_pretrained(output)
    return output

