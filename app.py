"""The box-prompt demo app (Gradio), ready to run locally or as a Hugging Face Space.

    pip install -e ".[app]"
    python app.py --model runs/polyp-sam-b-full/best [--port 7860] [--share]
"""

import argparse

from polyp_sam_hf.demo_app import build_app
from polyp_sam_hf.inference import PolypSegmenter


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-sam", help="Hub id, folder, or built-in name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="a public Gradio link")
    args = parser.parse_args(argv)
    build_app(PolypSegmenter.from_pretrained(args.model)).launch(
        server_name=args.host, server_port=args.port, share=args.share
    )


if __name__ == "__main__":
    main()
