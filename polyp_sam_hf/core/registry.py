"""Name lookups in the library's registries (datasets, splits, strategies, losses, baselines, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from polyp_sam_hf.core.errors import ConfigError

T = TypeVar("T")


def by_name(*entries: T, key: str = "name") -> dict[str, T]:
    """A registry of `entries` keyed by their `key` attribute, in the order given.

    Raises:
        ValueError: two entries share a name (a registry entry would silently shadow another).
    """
    registry = {getattr(entry, key): entry for entry in entries}
    if len(registry) != len(entries):
        raise ValueError(f"Duplicate names in a registry: {[getattr(e, key) for e in entries]}.")
    return registry


def lookup(registry: Mapping[str, T], name: str, kind: str, plural: str | None = None) -> T:
    """`registry[name]`, or a `ValueError` that lists the valid names; names match exactly, so a
    typo never silently selects something else."""
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(
            f"Unknown {kind} {name!r}. Valid {plural or kind + 's'}: {', '.join(registry)}."
        ) from None
