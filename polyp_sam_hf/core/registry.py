"""Name lookups in the library's registries (datasets, splits, strategies, losses, baselines, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from polyp_sam_hf.core.errors import ConfigError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, kind: str, plural: str | None = None) -> T:
    """`registry[name]`, or a `ValueError` that lists the valid names; names match exactly, so a
    typo never silently selects something else."""
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(
            f"Unknown {kind} {name!r}. Valid {plural or kind + 's'}: {', '.join(registry)}."
        ) from None
