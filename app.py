"""The box-prompt demo app (Gradio), ready to run locally or as a Hugging Face Space.

    pip install -e ".[app]"
    python app.py --model runs/table2-b-full/best [--port 7860] [--share]
    python app.py        # $POLYP_SAM_MODEL, else models/mobile-sam, else tiny-sam (random weights, warned)

The same as `polyp-sam app`.
"""

import sys

from polyp_sam_hf.commands.cli import main as cli_main

if __name__ == "__main__":
    sys.exit(cli_main(["app", *sys.argv[1:]]))
