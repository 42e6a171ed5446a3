"""The `polyp-sam` command line: one subcommand per job, in a registry.

    polyp-sam demo-data --output DIR
    polyp-sam prepare --data-root DIR --output DIR
    polyp-sam train --config configs/demo.yaml
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .data.reading import DataError


def _add_demo_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, type=Path, help="folder to write into")
    parser.add_argument("--num-train", type=int, default=120, help="TrainDataset frames")
    parser.add_argument("--num-test", type=int, default=12, help="frames per test dataset")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same data")


def _run_demo_data(args: argparse.Namespace) -> int:
    from .data.synthetic import write_demo_data

    out = write_demo_data(args.output, args.num_train, args.num_test, args.seed)
    print(f"Wrote demo data in the PraNet layout to {out}")
    return 0


def _add_prepare(parser: argparse.ArgumentParser) -> None:
    from .data.splits import SPLIT_PRESETS

    parser.add_argument("--data-root", required=True, type=Path, help="PraNet layout or releases")
    parser.add_argument("--output", required=True, type=Path, help="where save_to_disk writes")
    parser.add_argument("--split-preset", default="paper", choices=sorted(SPLIT_PRESETS))
    parser.add_argument("--val-fraction", type=float, default=0.2, help="per training source")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--min-component-area", type=int, default=10, help="pixels, for `boxes`")
    parser.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="list unreadable or mismatched pairs as skipped instead of stopping at the first",
    )
    parser.add_argument("--push-to-hub", metavar="REPO", help="also push the DatasetDict there")
    parser.add_argument("--public", action="store_true", help="with --push-to-hub: not private")


def _run_prepare(args: argparse.Namespace) -> int:
    from .data.prepare import prepare_dataset

    dataset, report = prepare_dataset(
        args.data_root,
        split_preset=args.split_preset,
        val_fraction=args.val_fraction,
        seed=args.seed,
        min_component_area=args.min_component_area,
        skip_bad_files=args.skip_bad_files,
    )
    dataset.save_to_disk(str(args.output))
    if args.push_to_hub:
        dataset.push_to_hub(args.push_to_hub, private=not args.public)
    print(report.format())
    print(f"\nSaved to {args.output} (datasets.load_from_disk reads it back).")
    return 0


def _run_train(argv: list[str]) -> int:
    from .training import main as train_main

    return train_main(argv)


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None] | None
    run: Callable


COMMANDS: dict[str, Command] = {
    "demo-data": Command("write synthetic polyp frames (PraNet layout)", _add_demo_data, _run_demo_data),
    "prepare": Command("build the DatasetDict from a data root", _add_prepare, _run_prepare),
    # train parses its own dataclass arguments (HfArgumentParser), so it takes the raw argv
    "train": Command("fine-tune SAM (same flags as train.py)", None, _run_train),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    parser = argparse.ArgumentParser(prog="polyp-sam", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, add_help=command.add_arguments is not None)
        if command.add_arguments:
            command.add_arguments(p)
    if argv and argv[0] in COMMANDS and COMMANDS[argv[0]].add_arguments is None:
        return COMMANDS[argv[0]].run(argv[1:])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command].run(args)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
