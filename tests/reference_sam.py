"""The official model code shipped beside the checkpoints (MobileSAM's repository code, LiteMedSAM's
vendored code), built as their own scripts build it: an implementation independent of this library,
of kornia and of transformers, to check converted models against."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import torch

from polyp_sam_hf.models.weights import reference_dir


def _package(name: str, folder: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py", submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _tiny_vit(module, image_size: int, **head):
    return module.TinyViT(img_size=image_size, in_chans=3, **head, embed_dims=[64, 128, 160, 320],
                          depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7],
                          mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False,
                          mbconv_expand_ratio=4.0, local_conv_size=3, layer_lr_decay=0.8)


def reference_parts(arch: str, checkpoint: Path):
    """(image_encoder, prompt_encoder, mask_decoder) of the official code, weights loaded, eval mode."""
    folder = reference_dir(arch, checkpoint.parent.parent)
    if arch == "mobile-sam":
        modeling = _package("mobile_sam_reference_modeling", folder / "modeling")
        tiny_vit, sam_parts, size = modeling, modeling, 1024
    else:
        _package("lite_medsam_reference", folder)
        tiny_vit = importlib.import_module("lite_medsam_reference.tiny_vit_sam")
        sam_parts = importlib.import_module("lite_medsam_reference.segment_anything.modeling")
        size = 256
    # as each project's own builder: MobileSAM's keeps a 1000-class head, LiteMedSAM's has none
    encoder = _tiny_vit(tiny_vit, size, **({"num_classes": 1000} if arch == "mobile-sam" else {}))
    prompt = sam_parts.PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(size, size),
                                     mask_in_chans=16)
    decoder = sam_parts.MaskDecoder(num_multimask_outputs=3, transformer=sam_parts.TwoWayTransformer(
        depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8), transformer_dim=256, iou_head_depth=3,
        iou_head_hidden_dim=256)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for prefix, part in (("image_encoder.", encoder), ("prompt_encoder.", prompt), ("mask_decoder.", decoder)):
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        part.load_state_dict(sub, strict=prefix != "image_encoder.")  # LiteMedSAM has no classifier head
    return encoder.eval(), prompt.eval(), decoder.eval()


@torch.no_grad()
def reference_logits(parts, pixels: torch.Tensor, boxes: torch.Tensor,
                     masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeddings (1, 256, 64, 64), low-resolution logits (K, 256, 256)) for one frame's boxes
    (K, 4) in input pixels, single-mask output as segment-anything's predictor gives it; `masks`
    (K, 1, 256, 256): a dense mask prompt per box."""
    encoder, prompt, decoder = parts
    embeddings = encoder(pixels)
    sparse, dense = prompt(points=None, boxes=boxes, masks=masks)
    low_res, _ = decoder(image_embeddings=embeddings, image_pe=prompt.get_dense_pe(),
                         sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False)
    return embeddings, low_res[:, 0]


@torch.no_grad()
def kornia_logits(checkpoint: Path, pixels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Low-resolution single-mask logits (K, 256, 256) of kornia's complete MobileSAM `Sam` (its own
    TinyViT, prompt encoder and mask decoder) for one frame's boxes (K, 4) in input pixels."""
    from kornia.models.sam import Sam, SamConfig

    sam = Sam.from_config(SamConfig("mobile_sam", checkpoint=str(checkpoint))).eval()
    sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
    logits, _ = sam.mask_decoder(image_embeddings=sam.image_encoder(pixels), image_pe=sam.prompt_encoder.get_dense_pe(),
                                 sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False)
    return logits[:, 0]
