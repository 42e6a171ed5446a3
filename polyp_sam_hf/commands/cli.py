"""The `polyp-sam` command line: one subcommand per job, in a registry.

    polyp-sam demo-data --output_dir DIR
    polyp-sam prepare --data_root DIR --output_dir DIR
    polyp-sam train --config configs/demo.yaml
    polyp-sam evaluate --model_name_or_path outputs/demo/run/best --data outputs/demo/data --output_dir eval
    polyp-sam predict --model_name_or_path outputs/demo/run/best --image frame.png --box 40,30,200,180 --output_dir pred
    polyp-sam bootstrap eval/a eval/b
    polyp-sam convert --arch mobile-sam --output_dir models/mobile-sam
    polyp-sam export --model_name_or_path outputs/demo/run/best --repo_id ORG/NAME --output_dir upload
    polyp-sam app --model_name_or_path outputs/demo/run/best

Every command declares its flags as a dataclass in its own module (`commands/<name>.py`), parsed
one way (`core.arguments.parse_arguments`: transformers' `HfArgumentParser`); `train` also reads a
YAML file (`--config`). Only the chosen command's module is imported, so `polyp-sam --help` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass

from polyp_sam_hf.core.threads import flush_denormal_floats, prefer_passive_waiting, set_cpu_threads

prefer_passive_waiting()  # an entry point: before PyTorch loads (core/threads.py says why)

from polyp_sam_hf.core.arguments import did_you_mean, parse_arguments  # noqa: E402
from polyp_sam_hf.core.errors import REPORTED  # noqa: E402


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, and where its settings dataclass and its `run` live
    (`module:ArgumentsClass:run_function`; `train` parses its own, so it names `main` alone)."""

    help: str
    target: str

    def load(self):
        module, *names = self.target.split(":")
        module = importlib.import_module(f"polyp_sam_hf.commands.{module}")
        return [getattr(module, name) for name in names]


COMMANDS: dict[str, Command] = {
    "demo-data": Command("write synthetic polyp frames (PraNet layout)", "demo_data:DemoDataArguments:run"),
    "prepare": Command("build the DatasetDict from a data root", "prepare:PrepareArguments:run"),
    "train": Command("fine-tune SAM (the flags of train.py; --config FILE.yaml)", "train:main"),
    "evaluate": Command("score a model per dataset beside box-only baselines", "evaluate:EvaluateArguments:run"),
    "predict": Command("masks and overlays for new frames from boxes", "predict:PredictArguments:run"),
    "convert": Command("model folder from a MobileSAM / LiteMedSAM checkpoint", "convert:ConvertArguments:run"),
    "fetch-weights": Command("download the MobileSAM / LiteMedSAM checkpoints (SHA-256 checked)",
                             "convert:FetchWeightsArguments:run_fetch_weights"),
    "compare": Command("set evaluations beside the paper's Tables 1-3", "compare:CompareArguments:run"),
    "bootstrap": Command("two evaluations of the same frames: the difference and its 95 percent interval (paired "
                         "bootstrap)", "bootstrap:BootstrapArguments:run"),
    "reproduce": Command("train and evaluate every run of the paper's tables; write comparison.md",
                         "reproduce:ReproduceConfig:run"),
    "export": Command("write a checkpoint as a Hub model folder with its model card; send nothing",
                      "export:ExportArguments:run"),
    "upload": Command("push a checkpoint and its model card to the Hub", "upload:UploadArguments:run"),
    "app": Command("the box-prompt demo app (Gradio; the app extra)", "app:AppArguments:run"),
}


def _usage() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyp-sam", description=__doc__.splitlines()[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.help)
    return parser


def main(argv: list[str] | None = None) -> int:
    flush_denormal_floats()  # before any work starts PyTorch's thread pool (core/threads.py says why)
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if not argv or argv[0] in ("-h", "--help"):
        _usage().print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        _usage().error(f"argument COMMAND: invalid choice: {name!r}{did_you_mean([name], COMMANDS)}")
    try:
        loaded = COMMANDS[name].load()
        if len(loaded) == 1:  # train: its own parser, its own error handling
            return loaded[0](rest)
        arguments, run = loaded
        (args,) = parse_arguments(arguments, rest, prog=f"polyp-sam {name}", description=COMMANDS[name].help)
        set_cpu_threads()
        return run(args)
    except REPORTED as err:  # the library's own, or a path refused: the message says what to do; a bug keeps
        # its traceback
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
