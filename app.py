"""The box-prompt demo app (Gradio), ready to run locally or as a Hugging Face Space.

    pip install -e ".[app]"
    python app.py --model runs/table2-b-full/best [--port 7860] [--share]
    python app.py        # $POLYP_SAM_MODEL, else models/mobile-sam, else tiny-sam (random weights, warned)
"""

import argparse

from polyp_sam_hf.demo_app import LAUNCH_SETTINGS, build_app, choose_model
from polyp_sam_hf.inference import PolypSegmenter


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model", help="Hub id, folder, or built-in name (default: $POLYP_SAM_MODEL, "
                        "else models/mobile-sam from `polyp-sam convert --arch mobile-sam`, else tiny-sam)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="a public Gradio link")
    args = parser.parse_args(argv)
    name, warning = choose_model(args.model)
    build_app(PolypSegmenter.from_pretrained(name), warning=warning).launch(
        server_name=args.host, server_port=args.port, share=args.share, **LAUNCH_SETTINGS
    )


if __name__ == "__main__":
    main()
