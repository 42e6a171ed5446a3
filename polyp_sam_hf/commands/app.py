"""`polyp-sam app`: the box-prompt demo app (Gradio), locally or as a Hugging Face Space.

    polyp-sam app --model_name_or_path runs/table2-b-full/best [--port 7860] [--share]
    polyp-sam app        # $POLYP_SAM_MODEL, else models/mobile-sam, else tiny-sam (random weights, warned)

Needs the `app` extra: `pip install "polyp-sam-hf[app]"`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from polyp_sam_hf.core.arguments import check_choices
from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.models.segmenter import BACKENDS, PolypSegmenter
from polyp_sam_hf.publishing.gradio_demo import LAUNCH_SETTINGS, build_app, choose_model, trained_prompt_free


@dataclass
class AppArguments:
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "Hub id, folder, or built-in name (default: $POLYP_SAM_MODEL, else models/mobile-sam from "
                "`polyp-sam convert --arch mobile-sam`, else tiny-sam)"})
    host: str = field(default="127.0.0.1", metadata={"help": "the address to serve on"})
    port: int = field(default=7860, metadata={"help": "the port to serve on"})
    share: bool = field(default=False, metadata={"help": "a public Gradio link"})
    backend: str = field(default="torch", metadata={
        "help": "torch, or the folder's ONNX graphs under ONNX Runtime on the CPU: onnx (float32) or onnx-int8 "
                "(`polyp-sam export --onnx` writes them)", "choices": sorted(BACKENDS)})

    def __post_init__(self) -> None:
        check_choices(self)


def require_gradio() -> None:
    """The app's one optional dependency, or one line saying how to install it."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError('The demo app needs Gradio, which is not installed: pip install "polyp-sam-hf[app]" '
                          '(from a clone: pip install -e ".[app]").') from None


def run(args: AppArguments) -> int:
    require_gradio()
    name, warning = choose_model(args.model_name_or_path)
    app = build_app(PolypSegmenter.from_pretrained(name, backend=args.backend), warning=warning, prompt_free=trained_prompt_free(name))
    app.launch(server_name=args.host, server_port=args.port, share=args.share, **LAUNCH_SETTINGS)
    return 0
