"""The model inside its wrappers."""

from __future__ import annotations


def unwrap(model, attribute: str):
    """The first of `model`, `model.module`, `model.module.module`, ... that has `attribute`.

    Accelerate and DDP wrap a model as `.module`; PEFT's wrapper passes attributes through to the
    model it wraps, so the walk stops at the first object that answers. Where none does, the
    innermost is returned (and reading the attribute then fails with the model's own error).
    """
    while not hasattr(model, attribute) and hasattr(model, "module"):
        model = model.module
    return model
