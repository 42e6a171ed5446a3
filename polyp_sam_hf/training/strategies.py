"""What fine-tuning trains: the paper's two strategies, the prompt encoder with the decoder, and LoRA,
a registry by name.

A strategy sets `requires_grad` on a loaded SAM (and may wrap it) and returns the model to train.
LoRA wraps the model in PEFT's `PeftModel`, so that PEFT also merges the adapters back into the
weights when `best/` is written (`merge_adapters`): one implementation of the merge, PEFT's, with its
check for NaN in the merged weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from polyp_sam_hf.core.errors import CheckpointError
from polyp_sam_hf.core.registry import by_name, lookup


@dataclass(frozen=True)
class Strategy:
    """A fine-tuning strategy.

    Attributes:
        name: the `--strategy` value.
        description: one line for help and logs.
        apply: sets `requires_grad` (and may wrap the model); returns the model to train.
        frozen_encoder: True when the image encoder never changes, so its embeddings can be cached.
    """

    name: str
    description: str
    apply: Callable[..., torch.nn.Module]
    frozen_encoder: bool


def _trainable(*prefixes: str) -> Callable[..., torch.nn.Module]:
    """A strategy's `apply` that trains the parameters under `prefixes` and freezes the rest."""
    def apply(model: torch.nn.Module, **_) -> torch.nn.Module:
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith(prefixes)
        return model

    return apply


# the fused query/key/value projection of every image-encoder attention block: SAM's ViT
# (layers.N.attn.qkv) and TinyViT (layers.N.blocks.M.attn.qkv)
LORA_TARGETS = r"vision_encoder\.layers\.\d+(\.blocks\.\d+)?\.attn\.qkv"


def _lora(*trained: str) -> Callable[..., torch.nn.Module]:
    """A strategy's `apply`: PEFT's LoRA on the image encoder's attention, and the modules named in
    `trained` (`mask_decoder`, `prompt_encoder`) trained fully beside it."""
    def apply(model: torch.nn.Module, lora_rank: int = 8, lora_alpha: int = 16, **_) -> torch.nn.Module:
        from peft import LoraConfig, get_peft_model  # here: importing peft takes seconds, LoRA alone needs it

        config = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules=LORA_TARGETS)
        with warnings.catch_warnings():  # PEFT asks transformers' deprecated name; nothing a user can act on
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            wrapped = get_peft_model(model, config)
        for name, param in wrapped.named_parameters():
            param.requires_grad = "lora_" in name or any(f".{module}." in f".{name}" for module in trained)
        return wrapped

    return apply


STRATEGIES: dict[str, Strategy] = by_name(
    Strategy("decoder", "mask decoder trained, image and prompt encoders frozen (paper's 1)",
             _trainable("mask_decoder."), True),
    Strategy("prompt-decoder", "prompt encoder and mask decoder trained, image encoder frozen (embeddings "
             "computed once): the click and mask-prompt embeddings learn with the decoder",
             _trainable("prompt_encoder.", "mask_decoder."), True),
    Strategy("full", "image encoder, prompt encoder and mask decoder trained (paper's 2)",
             _trainable("vision_encoder.", "prompt_encoder.", "mask_decoder."), False),
    Strategy("lora", "LoRA on the image encoder's attention, mask decoder trained fully",
             _lora("mask_decoder"), False),
    Strategy("lora-prompt-decoder", "LoRA on the image encoder's attention, prompt encoder and mask decoder "
             "trained fully: correction rounds with an encoder that learns too",
             _lora("prompt_encoder", "mask_decoder"), False),
)


def get_strategy(name: str) -> Strategy:
    """The strategy called `name`; a `ValueError` lists the valid names otherwise."""
    return lookup(STRATEGIES, name, "strategy", "strategies")


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def has_adapters(model: torch.nn.Module) -> bool:
    """Whether `model` carries LoRA adapters (a `PeftModel` made by the `lora` strategy)."""
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def merge_adapters(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model (a `SamModel` that vanilla `from_pretrained` loads) with LoRA folded into its
    weights, by PEFT's `merge_and_unload(safe_merge=True)`; `model` itself is changed. A model
    without adapters is returned as it is.

    Raises:
        CheckpointError: the merged weights would hold NaN (a run that diverged).
    """
    if not has_adapters(model):
        return model
    try:
        return model.merge_and_unload(safe_merge=True)
    except ValueError as err:  # PEFT's safe merge: NaN in the merged weights
        raise CheckpointError(f"Cannot merge the LoRA adapters: {err}. The run diverged; resume from an earlier "
                              "checkpoint with a lower --learning_rate.") from None


def freeze_unreached(model: torch.nn.Module, loss: torch.Tensor) -> list[str]:
    """Freeze trainable parameters that `loss` does not depend on, and return their names.

    With box prompts, the prompt encoder's point and mask-input embeddings and the IoU head never
    take part in the loss. DistributedDataParallel stops with an error on such parameters (or
    pays for `find_unused_parameters=True` on every step); freezing them once is exact, since
    their gradient would always be empty.
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
    unreached = [n for (n, p), g in zip(params, grads) if g is None]
    for name, param in params:
        if name in unreached:
            param.requires_grad = False
    return unreached
