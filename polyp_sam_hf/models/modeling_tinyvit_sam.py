"""SAM with a TinyViT image encoder (MobileSAM, LiteMedSAM) as a transformers `SamModel`.

Everything after the image embeddings (prompt encoder, mask decoder, outputs) is transformers' own
SAM code; only `vision_encoder` is replaced by kornia's TinyViT with SAM's neck, which maps a
(B, 3, S, S) normalised frame to (B, 256, 64, 64) embeddings like SAM's ViT does.

This file imports only torch, transformers and kornia: it is copied beside the weights of every
saved model (`auto_map` in config.json), so

    AutoModel.from_pretrained(folder_or_repo, trust_remote_code=True)

loads such a model where this library is not installed.
"""

from __future__ import annotations

import torch
from kornia.models.tiny_vit import ConvBN, TinyViT
from torch import nn
from transformers import SamConfig, SamModel
from transformers.models.sam.modeling_sam import (
    SamMaskDecoder,
    SamPositionalEmbedding,
    SamPreTrainedModel,
    SamPromptEncoder,
    SamVisionEncoderOutput,
)

# TinyViT-5M, the shape both MobileSAM and LiteMedSAM use (embedding widths, blocks, heads and
# attention windows per stage). `patch_stride` is the patch embedding's total stride: 4 (two
# 3x3 stride-2 convolutions, MobileSAM at 1024 px) or 1 (two 1x1 convolutions, LiteMedSAM at
# 256 px). `freeze_batchnorm`: the BatchNorm layers keep their running statistics in train mode.
TINY_VIT_5M = {
    "embed_dims": [64, 128, 160, 320],
    "depths": [2, 2, 6, 2],
    "num_heads": [2, 4, 5, 10],
    "window_sizes": [7, 7, 14, 7],
    "mlp_ratio": 4.0,
    "mbconv_expand_ratio": 4.0,
    "local_conv_size": 3,
    "patch_stride": 4,
    "freeze_batchnorm": True,
}


class TinyViTSamConfig(SamConfig):
    """A `SamConfig` whose `tiny_vit` dict describes the TinyViT encoder (keys of `TINY_VIT_5M`).

    `vision_config.image_size` is the input size S and `vision_config.patch_size` the encoder's
    total stride, so `image_size // patch_size` is the embedding grid, as for SAM's ViT; the
    ViT-specific fields of `vision_config` are unused.
    """

    model_type = "tinyvit_sam"


class TinyViTVisionEncoder(TinyViT):
    """kornia's TinyViT in MobileSAM mode (stride-1 last stage, SAM's neck), without the unused
    classification head, returning `SamVisionEncoderOutput` like transformers' `SamVisionEncoder`.

    Input (B, 3, S, S) float pixels; output `last_hidden_state` (B, 256, S/stride, S/stride).
    """

    def __init__(self, config: TinyViTSamConfig) -> None:
        spec = {**TINY_VIT_5M, **(getattr(config, "tiny_vit", None) or {})}
        size = config.vision_config.image_size
        stride = int(spec["patch_stride"])
        if stride not in (1, 4):
            raise ValueError(f"tiny_vit.patch_stride must be 1 or 4, got {stride}.")
        # kornia builds its stages for the grid of an image of `img_size` after a stride-4 patch
        # embedding; a stride-1 embedding of an S image gives the grid of a 4S image.
        super().__init__(
            img_size=size * 4 // stride,
            embed_dims=spec["embed_dims"],
            depths=spec["depths"],
            num_heads=spec["num_heads"],
            window_sizes=spec["window_sizes"],
            mlp_ratio=spec["mlp_ratio"],
            mbconv_expand_ratio=spec["mbconv_expand_ratio"],
            local_conv_size=spec["local_conv_size"],
            mobile_sam=True,
        )
        if stride == 1:
            width = spec["embed_dims"][0]
            self.patch_embed.seq = nn.Sequential(
                ConvBN(config.vision_config.num_channels, width // 2, 1, 1, 0), nn.GELU(), ConvBN(width // 2, width, 1, 1, 0)
            )
        del self.norm_head, self.head  # the 1000-class head, never used for segmentation
        self.freeze_batchnorm = bool(spec["freeze_batchnorm"])
        self.train(self.training)  # a new module is in train mode: apply the rule from the start

    def train(self, mode: bool = True) -> "TinyViTVisionEncoder":
        """Train mode, but with BatchNorm kept in eval mode when `freeze_batchnorm`.

        In train mode BatchNorm normalises with the statistics of the current (small) batch and
        overwrites its running statistics, even where no parameter has `requires_grad`: a frozen
        encoder would change, and batches of 1-4 frames give noisy statistics.
        """
        super().train(mode)
        if self.freeze_batchnorm:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, pixel_values: torch.Tensor, **_) -> SamVisionEncoderOutput:
        return SamVisionEncoderOutput(last_hidden_state=super().forward(pixel_values))


class TinyViTSamModel(SamModel):
    """transformers' `SamModel` with `TinyViTVisionEncoder` as its image encoder.

    Same inputs and outputs as `SamModel` (`pixel_values` or `image_embeddings`, `input_boxes`,
    `input_points`, `multimask_output`; `pred_masks` (B, K, M, 4h, 4w) logits, `iou_scores`).
    """

    config_class = TinyViTSamConfig
    _no_split_modules = []

    def __init__(self, config: TinyViTSamConfig) -> None:
        # SamModel.__init__ would first build a ViT encoder; build the same parts with TinyViT.
        SamPreTrainedModel.__init__(self, config)
        self.shared_image_embedding = SamPositionalEmbedding(config.vision_config)
        # kornia computes TinyViT's attention-bias index buffers with torch.unique, which has no
        # meta-device kernel: build the encoder on the CPU even where transformers builds on meta
        with torch.device("cpu"):
            self.vision_encoder = TinyViTVisionEncoder(config)
        self.prompt_encoder = SamPromptEncoder(config)
        config.mask_decoder_config._attn_implementation = config._attn_implementation
        self.mask_decoder = SamMaskDecoder(config.mask_decoder_config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # kornia initialises TinyViT itself; only SAM's parts take transformers' initialisation.
        if any(module is m for m in self.vision_encoder.modules()):
            if hasattr(module, "attention_bias_idxs"):
                # a non-persistent buffer (never saved): transformers' loader leaves it empty and
                # expects it to be recomputed here, from the square attention window it indexes
                side = round(module.attention_bias_idxs.shape[0] ** 0.5)
                indices, _ = module.build_attention_bias((side, side))
                with torch.no_grad():
                    module.attention_bias_idxs.copy_(indices)
            return
        super()._init_weights(module)

    def get_input_embeddings(self) -> nn.Module:
        return self.vision_encoder.patch_embed


TinyViTSamConfig.register_for_auto_class()
TinyViTSamModel.register_for_auto_class("AutoModel")
