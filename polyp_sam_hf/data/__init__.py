"""The data layer: the five polyp datasets as Hugging Face `datasets`, with box prompts."""

from .layouts import LAYOUTS, discover
from .prepare import FEATURES, PrepareReport, build_row, prepare_dataset
from .prompts import component_boxes, component_masks, jitter_box, mask_to_box
from .reading import DataError, read_image, read_mask, read_pair
from .sources import SOURCES, get_source
from .splits import SPLIT_PRESETS, get_split_preset
from .synthetic import synth_frame, write_demo_data

__all__ = [
    "FEATURES",
    "LAYOUTS",
    "SOURCES",
    "SPLIT_PRESETS",
    "DataError",
    "PrepareReport",
    "build_row",
    "component_boxes",
    "component_masks",
    "discover",
    "get_source",
    "get_split_preset",
    "jitter_box",
    "mask_to_box",
    "prepare_dataset",
    "read_image",
    "read_mask",
    "read_pair",
    "synth_frame",
    "write_demo_data",
]
