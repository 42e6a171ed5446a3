"""polyp-sam-hf: fine-tune the Segment Anything Model for box-prompted polyp segmentation."""

__version__ = "0.1.0"
