"""Publish a fine-tuned checkpoint to the Hugging Face Hub (not yet available)."""

import sys

if __name__ == "__main__":
    sys.exit("hub_upload.py: publishing is not implemented yet.")
