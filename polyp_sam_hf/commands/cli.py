"""The `polyp-sam` command line: one subcommand per job, in a registry.

    polyp-sam demo-data --output DIR
    polyp-sam prepare --data-root DIR --output DIR
    polyp-sam train --config configs/demo.yaml
    polyp-sam evaluate --model outputs/demo/run/best --data outputs/demo/data --output eval
    polyp-sam predict --model outputs/demo/run/best --image frame.png --box 40,30,200,180 --output pred
    polyp-sam convert --arch mobile-sam --output models/mobile-sam
    polyp-sam export --model outputs/demo/run/best --repo-id ORG/NAME --output upload
    polyp-sam app --model outputs/demo/run/best
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from polyp_sam_hf.core.threads import prefer_passive_waiting, set_cpu_threads

prefer_passive_waiting()  # an entry point: before PyTorch loads (threads.py says why)

from polyp_sam_hf.commands import app, publish  # noqa: E402
from polyp_sam_hf.core.errors import REPORTED, ConfigError  # noqa: E402
from polyp_sam_hf.data.splits import SplitSettings  # noqa: E402


def _add_demo_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, type=Path, help="folder to write into")
    parser.add_argument("--num-train", type=int, default=120, help="TrainDataset frames")
    parser.add_argument("--num-test", type=int, default=12, help="frames per test dataset")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same data")


def _run_demo_data(args: argparse.Namespace) -> int:
    from polyp_sam_hf.data.synthetic import write_demo_data

    out = write_demo_data(args.output, args.num_train, args.num_test, args.seed)
    print(f"Wrote demo data in the PraNet layout to {out}")
    return 0


def _add_prepare(parser: argparse.ArgumentParser) -> None:
    from polyp_sam_hf.data.splits import SPLIT_PRESETS

    parser.add_argument("--data-root", required=True, type=Path, help="PraNet layout or releases")
    parser.add_argument("--output", required=True, type=Path, help="where save_to_disk writes")
    parser.add_argument("--split-preset", default=SplitSettings.preset, choices=sorted(SPLIT_PRESETS))
    parser.add_argument("--val-fraction", type=float, default=SplitSettings.val_fraction, help="per training source")
    parser.add_argument("--seed", type=int, default=SplitSettings.seed, help="the split seed: draws the release split and validation")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already prepared in --output")
    parser.add_argument("--min-component-area", type=int, default=10, help="smallest polyp in pixels: smaller specks are left out of `box` and `boxes`")
    parser.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="list unreadable or mismatched pairs as skipped instead of stopping at the first",
    )
    parser.add_argument("--push-to-hub", metavar="REPO", help="also push the DatasetDict there")
    parser.add_argument("--public", action="store_true", help="with --push-to-hub: not private")


def _run_prepare(args: argparse.Namespace) -> int:
    from polyp_sam_hf.data.loading import save_prepared
    from polyp_sam_hf.data.prepare import prepare_dataset

    dataset, report = prepare_dataset(
        args.data_root,
        split_preset=args.split_preset,
        val_fraction=args.val_fraction,
        seed=args.seed,
        min_component_area=args.min_component_area,
        skip_bad_files=args.skip_bad_files,
    )
    save_prepared(dataset, args.output, SplitSettings(args.split_preset, args.val_fraction, args.seed),
                  args.data_root, overwrite=args.overwrite, report=report.format(full=True))
    if args.push_to_hub:
        dataset.push_to_hub(args.push_to_hub, private=not args.public)
    print(report.format())
    print(f"\nSaved to {args.output} (datasets.load_from_disk reads it back).")
    return 0


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    from polyp_sam_hf.data.splits import SPLIT_PRESETS
    from polyp_sam_hf.evaluation.evaluate import PROTOCOLS
    from polyp_sam_hf.evaluation.published import PAPER_RUNS
    from polyp_sam_hf.models.mask_prompts import MASK_PROMPTS

    parser.add_argument("--model", required=True, help="Hub id, folder, or built-in name")
    parser.add_argument("--data", required=True, help="prepared DatasetDict or raw data root")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--protocol", default="paper", choices=sorted(PROTOCOLS))
    parser.add_argument("--prompt-mode", default="single,per-component",
                        help="comma-separated (the first is the headline): single (one box around the whole mask, "
                             "the paper's), per-component (a box per polyp), none (no box: a model trained with "
                             "--prompt_mode none), auto (boxes made from the prompt-free mask, then box-prompted)")
    parser.add_argument("--auto-rounds", type=int, default=1, help="auto: rounds of boxes made from the last mask")
    parser.add_argument("--mask-prompt", choices=sorted(MASK_PROMPTS),
                        help="also prompt with a mask made from each box (ellipse: the ellipse inscribed in it); "
                             "default: the model's own setting, recorded when it was trained (none for a plain SAM)")
    parser.add_argument("--box-jitter", default="0", type=_floats, help="comma-separated levels, e.g. 0,0.05,0.1,0.2")
    parser.add_argument("--seed", type=int, default=0, help="seeds the box jitter")
    parser.add_argument("--batch-size", type=int, default=4, help="frames per encoder call")
    parser.add_argument("--save-masks", action="store_true", help="write masks/<source>/<image_id>.png")
    parser.add_argument("--figures", action="store_true", help="best/worst overlays per source")
    parser.add_argument("--max-samples", type=int, help="evaluate only the first N frames")
    parser.add_argument("--device", help="cuda, cpu, ... (default: cuda when present)")
    split = parser.add_argument_group("split of a raw data root (a prepared dataset holds its own)")
    split.add_argument("--split-preset", choices=sorted(SPLIT_PRESETS),
                       help="default: the one the model's run trained on, else paper")
    split.add_argument("--split-seed", type=int, help=f"default: the model's run's split seed, else {SplitSettings.seed}")
    split.add_argument("--val-fraction", type=float, help=f"default: the model's run's, else {SplitSettings.val_fraction}")
    parser.add_argument("--paper-run", choices=sorted(PAPER_RUNS),
                        help="the paper run this model reproduces, for the difference to the paper's row "
                             "(default: read from the run's record: base model, strategy, split)")


def _run_evaluate(args: argparse.Namespace) -> int:
    from polyp_sam_hf.data.prompts import EVAL_PROMPT_MODES as PROMPT_MODES
    from polyp_sam_hf.evaluation.evaluate import EvaluateConfig, run_evaluation

    modes = tuple(m.strip() for m in args.prompt_mode.split(","))
    for mode in modes:
        if mode not in PROMPT_MODES:
            raise ConfigError(f"--prompt-mode {mode!r}: valid modes are {', '.join(PROMPT_MODES)}.")
    metrics = run_evaluation(EvaluateConfig(
        model=args.model, data=args.data, output=str(args.output), split=args.split,
        protocol=args.protocol, prompt_modes=modes, box_jitter=args.box_jitter, seed=args.seed,
        batch_size=args.batch_size, save_masks=args.save_masks, figures=args.figures,
        max_samples=args.max_samples, device=args.device, split_preset=args.split_preset,
        split_seed=args.split_seed, val_fraction=args.val_fraction, paper_run=args.paper_run,
        auto_rounds=args.auto_rounds, mask_prompt=args.mask_prompt,
    ))
    print((args.output / "results.md").read_text())
    primary = metrics["primary"]
    jitter = f", box jitter {primary['box_jitter']}" if primary["box_jitter"] else ""
    synthetic = ", synthetic frames" if metrics["settings"].get("synthetic") else ""
    print(f"{metrics['run']['label']}, {primary['prompt_mode']} prompt{jitter}{synthetic}: mean Dice "
          f"{metrics['all']['dice']:.4f}, mIoU {metrics['all']['miou']:.4f} over {metrics['all']['n']} frames "
          f"(the headline row of {args.output / 'results.md'})")
    return 0


def _add_predict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Hub id, folder, or built-in name")
    parser.add_argument("--image", required=True, type=Path, help="an image file or a folder of them")
    parser.add_argument("--box", action="append", default=[], help="x0,y0,x1,y1 in pixels; repeat for several")
    parser.add_argument("--boxes", type=Path, help="JSON {image: [[x0,y0,x1,y1], ...]} or CSV image,x0,y0,x1,y1")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--device", help="cuda, cpu, ... (default: cuda when present)")
    parser.add_argument("--prompt-mode", default="box", choices=["box", "none", "auto"],
                        help="box: the boxes given; none: no box (a model trained with --prompt_mode none); "
                             "auto: boxes made from that prompt-free mask")


def _run_predict(args: argparse.Namespace) -> int:
    from polyp_sam_hf.commands.predict import run_predict
    from polyp_sam_hf.data.prompts import parse_box

    boxes = [parse_box(b) for b in args.box] or None
    written = run_predict(args.model, args.image, args.output, boxes, args.boxes, args.device, args.prompt_mode)
    print(f"Wrote {len(written)} masks and overlays to {args.output}")
    return 0


def _add_convert(parser: argparse.ArgumentParser) -> None:
    from polyp_sam_hf.models.convert import ARCHS

    parser.add_argument("--arch", required=True, choices=sorted(ARCHS), help="the checkpoint's architecture")
    parser.add_argument("--checkpoint", type=Path,
                        help="a Meta-format .pt/.pth state dict (default: the official file, fetched and "
                             "checked by SHA-256 into the cache, see fetch-weights)")
    parser.add_argument("--output", type=Path, help="model folder to write (default: models/ARCH)")


def _run_convert(args: argparse.Namespace) -> int:
    from polyp_sam_hf.models.convert import convert_checkpoint
    from polyp_sam_hf.models.weights import fetch_checkpoint

    checkpoint = args.checkpoint or fetch_checkpoint(args.arch)
    output = convert_checkpoint(checkpoint, args.arch, args.output or Path("models") / args.arch)
    print(f"Wrote {args.arch} from {checkpoint} to {output}: pass --model {output} to train.py, evaluate, "
          "predict, app.py or hub_upload.py.")
    return 0


def _add_fetch_weights(parser: argparse.ArgumentParser) -> None:
    from polyp_sam_hf.models.weights import PACKAGES

    parser.add_argument("--arch", action="append", choices=sorted(PACKAGES),
                        help="which checkpoint (repeat for several; default: all)")


def _run_fetch_weights(args: argparse.Namespace) -> int:
    from polyp_sam_hf.models.weights import PACKAGES, fetch_checkpoint

    for arch in args.arch or sorted(PACKAGES):
        print(f"{arch}: {fetch_checkpoint(arch)}")
    return 0


def _add_compare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("metrics", nargs="+", type=Path, metavar="EVAL",
                        help="metrics.json files of `polyp-sam evaluate`, or the folders holding them")
    parser.add_argument("--table", type=int, action="append", choices=(1, 2, 3),
                        help="only this paper table (repeat for several; default: all)")
    parser.add_argument("--output", type=Path, help="also write the comparison to this file")


def _run_compare(args: argparse.Namespace) -> int:
    from polyp_sam_hf.evaluation.comparison import comparison_markdown, read_metrics

    text = comparison_markdown([read_metrics(p) for p in args.metrics], tuple(args.table or ()))
    if args.output:
        args.output.write_text(text)
    print(text)
    return 0


def _add_reproduce(parser: argparse.ArgumentParser) -> None:
    from polyp_sam_hf.commands.reproduce import REPO_CONFIGS
    from polyp_sam_hf.evaluation.published import PAPER_RUNS

    parser.add_argument("--data-root", required=True, type=Path, help="PraNet layout or original releases")
    parser.add_argument("--output", required=True, type=Path, help="data/, runs/, eval/ and comparison.md go here")
    parser.add_argument("--gpus", type=int, default=1, help="processes for accelerate launch, one per GPU")
    parser.add_argument("--accelerate-config", type=Path, help="an accelerate config file instead of --gpus")
    parser.add_argument("--model", help="replace every config's model (a local copy of SAM ViT-B/L, a built-in)")
    parser.add_argument("--configs", type=Path, default=REPO_CONFIGS, help="the folder of paper configs")
    parser.add_argument("--run", action="append", choices=list(PAPER_RUNS), help="only this run (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands; run nothing")
    parser.add_argument("train_args", nargs=argparse.REMAINDER,
                        help="after --: further train.py flags for every run, e.g. -- --max_steps 100")


def _run_reproduce(args: argparse.Namespace) -> int:
    from polyp_sam_hf.commands.reproduce import ReproduceConfig, reproduce
    from polyp_sam_hf.core.errors import StepFailedError

    extra = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    if args.gpus < 1:
        raise ConfigError(f"--gpus {args.gpus}: give at least 1.")
    try:
        reproduce(ReproduceConfig(
            data_root=args.data_root, output=args.output, gpus=args.gpus, accelerate_config=args.accelerate_config,
            model=args.model, configs=args.configs, runs=tuple(args.run or ReproduceConfig.runs),
            train_args=tuple(extra), dry_run=args.dry_run,
        ))
    except StepFailedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _run_train(argv: list[str]) -> int:
    from polyp_sam_hf.commands.train import main as train_main

    return train_main(argv)


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None] | None
    run: Callable


COMMANDS: dict[str, Command] = {
    "demo-data": Command("write synthetic polyp frames (PraNet layout)", _add_demo_data, _run_demo_data),
    "prepare": Command("build the DatasetDict from a data root", _add_prepare, _run_prepare),
    "evaluate": Command("score a model per dataset beside box-only baselines", _add_evaluate, _run_evaluate),
    "predict": Command("masks and overlays for new frames from boxes", _add_predict, _run_predict),
    "convert": Command("model folder from a MobileSAM / LiteMedSAM checkpoint", _add_convert, _run_convert),
    "fetch-weights": Command("download the MobileSAM / LiteMedSAM checkpoints (SHA-256 checked)",
                             _add_fetch_weights, _run_fetch_weights),
    "compare": Command("set evaluations beside the paper's Tables 1-3", _add_compare, _run_compare),
    "reproduce": Command("train and evaluate every run of the paper's tables; write comparison.md",
                         _add_reproduce, _run_reproduce),
    "export": Command("write a checkpoint as a Hub model folder with its model card; send nothing",
                      publish.add_export, publish.run_export),
    "upload": Command("push a checkpoint and its model card to the Hub", publish.add_upload, publish.run_upload),
    "app": Command("the box-prompt demo app (Gradio; the app extra)", app.add_arguments, app.run),
    # train parses its own dataclass arguments (HfArgumentParser), so it takes the raw argv
    "train": Command("fine-tune SAM (same flags as train.py)", None, _run_train),
}


class _Parser(argparse.ArgumentParser):
    """argparse with a "did you mean" for a misspelled command or choice (flags: see `main`), and no
    abbreviated flags: a typo is an error, never a silent match of a longer flag."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        from polyp_sam_hf.training.config import did_you_mean

        if "invalid choice:" in message and "choose from" in message:
            bad = message.split("invalid choice:", 1)[1].split("(")[0].strip().strip("'")
            choices = [c.strip(" '") for c in message.split("choose from", 1)[1].strip(" )").split(",")]
            message += did_you_mean([bad], choices)
        super().error(message)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    parser = _Parser(prog="polyp-sam", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, add_help=command.add_arguments is not None,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if command.add_arguments:
            command.add_arguments(p)
    if argv and argv[0] in COMMANDS and COMMANDS[argv[0]].add_arguments is None:
        return COMMANDS[argv[0]].run(argv[1:])
    args, extra = parser.parse_known_args(argv)
    if extra:  # flags the command does not have: name the closest it does
        from polyp_sam_hf.training.config import did_you_mean

        command = sub.choices.get(args.command, parser)
        given = [a.split("=")[0] for a in extra if a.startswith("-")] or extra
        command.error(f"unrecognized arguments: {' '.join(extra)}"
                      + did_you_mean(given, [o for a in command._actions for o in a.option_strings]))
    if args.command is None:
        parser.print_help()
        return 2
    set_cpu_threads()
    try:
        return COMMANDS[args.command].run(args)
    except REPORTED as err:  # the library's own, or a path refused: the message says what to do; a bug keeps its traceback
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
