"""The training loop: SAM fine-tuning with Accelerate on one device, several, or several nodes.

    accelerate launch train.py --config configs/paper/table2-b-full.yaml
    python train.py --config configs/demo.yaml
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
import yaml
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, parse_flag_from_env, set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from polyp_sam_hf.core.errors import ConfigError, DataError, NonFiniteLossError
from polyp_sam_hf.core.threads import set_cpu_threads
from polyp_sam_hf.data.augment import add_flips
from polyp_sam_hf.data.batches import PromptDataset, collate
from polyp_sam_hf.data.loading import is_prepared, load_polyp_data, recorded_split
from polyp_sam_hf.data.pixel_cache import build_pixel_cache
from polyp_sam_hf.evaluation.figures import plot_training_curves
from polyp_sam_hf.evaluation.report import test_report
from polyp_sam_hf.evaluation.scoring import validation_click_dice, validation_scores
from polyp_sam_hf.models.embedding_cache import build_embedding_cache
from polyp_sam_hf.models.loading import BUILTIN_MODELS, check_model_available, load_model_and_processor, model_class_for
from polyp_sam_hf.models.mask_prompts import set_mask_prompt
from polyp_sam_hf.models.segmenter import batch_logits, sam_of
from polyp_sam_hf.training.averaging import WeightAverage
from polyp_sam_hf.training.checkpointing import (
    FINISHED,
    INTERRUPTED,
    load_training_state,
    resolve_checkpoint,
    restore_scheduler,
    save_pretrained_atomic,
    save_training_state,
    step_name,
)
from polyp_sam_hf.training.config import DataArguments, ModelArguments, TrainArguments, config_to_dict
from polyp_sam_hf.training.interactive import PromptRounds
from polyp_sam_hf.training.losses import batch_loss, click_region_loss, get_loss
from polyp_sam_hf.training.stopping import GracefulStop
from polyp_sam_hf.training.strategies import count_parameters, freeze_unreached, get_strategy

logger = get_logger(__name__)


def build_scheduler(optimizer: torch.optim.Optimizer, train_args: TrainArguments, total_steps: int):
    """Learning rate per optimiser step.

    1. Linear warm-up from 0 to the peak over `warmup_ratio` of the steps (rounded up): AdamW's
       moment estimates are poor at first, and a full step from them can wreck pretrained weights.
    2. Then `lr_scheduler_type` (cosine: half a cosine from the peak down to 0 at `total_steps`), so
       the last epochs make small refinements.
    """
    return get_scheduler(
        train_args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=math.ceil(train_args.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )


def is_better(score: float, best: float) -> bool:
    """A validation score replaces the best only if it is finite and higher."""
    return math.isfinite(score) and score > best


def weights_checksum(model: torch.nn.Module) -> torch.Tensor:
    """A float64 fingerprint of all parameters (sum of |w| and of w * position), shape (2,)."""
    total = torch.zeros(2, dtype=torch.float64)
    for i, p in enumerate(model.parameters()):
        w = p.detach().double().cpu()
        total += torch.stack([w.abs().sum(), w.sum() * (i + 1)])
    return total


@dataclass
class TrainerState:
    """What a checkpoint records beside the weights, to resume exactly."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # data-loader batches of `epoch` already trained on
    best_dice: float = -math.inf
    best_step: int = -1
    history: list[dict] = field(default_factory=list)  # loss logs and validations, in step order (metrics.jsonl)
    loss_sum: float = 0.0  # the optimiser steps' losses since the last loss log
    loss_steps: int = 0

    @property
    def validations(self) -> list[dict]:
        return [h for h in self.history if "val_dice" in h]


# below this, a randomly initialised built-in model barely moves in a demo-length run (tiny-sam at
# the paper's 4e-6 ends at test Dice 0.12; configs/demo.yaml's 2e-3 beats the ellipse)
RANDOM_WEIGHTS_MIN_LR = 1e-4


NORMALIZE_ON_DEVICE = "POLYP_SAM_NORMALIZE_ON_DEVICE"  # 1: the GPU input path, even on a CPU (for tests)


def normalize_in_loader(device: torch.device) -> bool:
    """Who normalises the frames: on a GPU the uint8 frames travel (4x fewer bytes) and are
    normalised there; with the CPU as the device the loader's workers are the parallel hardware,
    so they normalise. `POLYP_SAM_NORMALIZE_ON_DEVICE=1` takes the GPU path on any device."""
    if os.environ.get(NORMALIZE_ON_DEVICE, "0") == "1":
        return False
    return device.type == "cpu"


def default_cache_dir(output_dir: str | Path) -> Path:
    """Where caches go without --cache_dir: OUTPUT/../cache, shared by the runs beside each other."""
    return Path(output_dir).parent / "cache"


def _loaders(model_args, data_args, train_args, dataset, model, processor, accelerator):
    strategy = get_strategy(model_args.strategy)
    root = data_args.cache_dir or str(default_cache_dir(train_args.output_dir))
    splits = [dataset["train"], dataset["validation"]]
    embeddings = pixels = None
    if strategy.frozen_encoder and data_args.embedding_cache:
        embeddings = build_embedding_cache(model, processor, splits, root, accelerator,
                                           batch_size=train_args.per_device_train_batch_size)
    elif data_args.pixel_cache:
        pixels = build_pixel_cache(processor, splits, root, accelerator)
    common = dict(processor=processor, prompt_mode=data_args.prompt_mode, seed=train_args.seed,
                  embeddings=embeddings, pixels=pixels)
    train_set = PromptDataset(dataset["train"], box_jitter=data_args.box_jitter, original_masks=False,
                              point_share=data_args.point_share, first_click=data_args.first_click, **common)
    val_set = PromptDataset(dataset["validation"], **common)
    batcher = functools.partial(collate, normalize=normalize_in_loader(accelerator.device))
    kwargs = dict(collate_fn=batcher, num_workers=data_args.dataloader_num_workers)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=train_args.per_device_train_batch_size,
                                               shuffle=True, drop_last=False, **kwargs)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=train_args.eval_batch_size, shuffle=False, **kwargs)
    return train_set, train_loader, val_loader


def _select(dataset, data_args):
    if data_args.max_train_samples:
        dataset["train"] = dataset["train"].select(range(min(data_args.max_train_samples, len(dataset["train"]))))
    if data_args.max_eval_samples:
        for split in ("validation", "test"):
            if split in dataset:
                dataset[split] = dataset[split].select(range(min(data_args.max_eval_samples, len(dataset[split]))))
    for split in ("train", "validation"):
        if split not in dataset or len(dataset[split]) == 0:
            raise DataError(f"The data has no {split!r} rows; prepare it with a validation fraction > 0.")
        boxed = [i for i, box in enumerate(dataset[split]["box"]) if box is not None]
        if not boxed:
            raise DataError(f"{data_args.data}: no {split!r} row has a box (every `box` is null: empty masks), so "
                            "there is nothing to prompt or learn; prepare the data from its masks with `polyp-sam "
                            "prepare`.")
        if len(boxed) < len(dataset[split]):
            logger.warning("%s: %d %s rows have no box (empty mask) and are left out: a box prompt cannot be made "
                           "for them", data_args.data, len(dataset[split]) - len(boxed), split, main_process_only=True)
            dataset[split] = dataset[split].select(boxed)
    if data_args.augment_flips:
        dataset["train"] = add_flips(dataset["train"], data_args.augment_flips)
    return dataset


def make_accelerator(train_args: TrainArguments, interactive: bool = False) -> Accelerator:
    """An Accelerator with gradient accumulation set from the effective batch.

    Processes launched without a GPU (`accelerate launch --multi_gpu --num_processes 2` or
    `torchrun` on a CPU machine) join one gloo process group on the CPU, so two CPU ranks stand in
    for two GPUs. With correction rounds (`interactive`) some prompt-encoder weights take part in a
    step or not by its prompts (the embedding of "no mask" only where a frame starts from a click),
    so DistributedDataParallel looks for the unused ones on each step.
    """
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or (ranks > 1 and not torch.cuda.is_available())
    report_to = None if train_args.report_to in ("none", "") else train_args.report_to
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=train_args.mixed_precision,
        log_with=report_to,
        project_dir=train_args.output_dir,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)] if interactive else None,
    )
    accelerator.gradient_accumulation_steps = train_args.accumulation_steps(accelerator.num_processes)
    return accelerator


@dataclass
class Run:
    """Everything one training run holds between its setup and its end (see `setup`)."""

    model_args: ModelArguments
    data_args: DataArguments
    train_args: TrainArguments
    accelerator: Accelerator
    settings: dict
    dataset: datasets.DatasetDict
    model: torch.nn.Module
    processor: object
    params: list
    optimizer: torch.optim.Optimizer
    scheduler: object
    loss_fn: object
    train_set: PromptDataset
    train_loader: object
    val_loader: object
    total_steps: int
    state: TrainerState = field(default_factory=TrainerState)
    step_start: int = 0  # the micro-batch of the epoch the optimiser step in progress began at
    average: WeightAverage | None = None  # with --ema_decay: what validation scores and best/ keeps

    @property
    def output_dir(self) -> Path:
        return Path(self.train_args.output_dir)

    def checkpoint(self, name: str, keep_last: int | None = None) -> None:
        """Save the training state as checkpoints/`name` (the scheduler's state as JSON in it)."""
        save_training_state(self.accelerator, self.output_dir, name,
                            {**self.state.__dict__, "scheduler": self.scheduler.state_dict()}, keep_last=keep_last,
                            average=self.average)

    def validated_weights(self):
        """A block in which the model holds the weights validation scores: the average with
        --ema_decay, the model's own otherwise."""
        return self.average.swapped_in() if self.average else contextlib.nullcontext()

    @property
    def stopped_early(self) -> bool:
        """The session ended at `--stop_after_steps`, before the schedule's end (a resumable stop)."""
        return self.state.step == self.train_args.stop_after_steps and self.state.step < self.total_steps

    def log(self, record: dict) -> None:
        """Append a record (a loss log or a validation) to the history, metrics.jsonl and the trackers."""
        self.state.history.append(record)
        if self.accelerator.is_main_process:
            with open(self.output_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        self.accelerator.log({k: v for k, v in record.items() if isinstance(v, float)}, step=record["step"])

    def add_loss(self, loss: float) -> None:
        """Count an optimiser step's loss; every `logging_steps` steps, log their mean (one step's loss is
        mostly the luck of its batch; the mean over a few shows the trend)."""
        state = self.state
        state.loss_sum, state.loss_steps = state.loss_sum + loss, state.loss_steps + 1
        if state.loss_steps >= self.train_args.logging_steps:
            self.log({"step": state.step, "epoch": state.epoch, "train_loss": state.loss_sum / state.loss_steps,
                      "lr": self.scheduler.get_last_lr()[0], "time": time.time()})
            state.loss_sum, state.loss_steps = 0.0, 0

    def validate_and_keep_best(self) -> None:
        """Score the validation split; a new best is written to best/; log it; checkpoint the step."""
        state, accelerator = self.state, self.accelerator
        with self.validated_weights():
            result = validation_scores(self.model, self.val_loader, accelerator)
            record = {"step": state.step, "epoch": state.epoch, "lr": self.scheduler.get_last_lr()[0],
                      "val_dice": result["dice"], "val_miou": result["miou"], "time": time.time()}
            score = result["dice"]
            if self.train_args.metric_for_best_model == "box_and_clicks":
                sam = sam_of(accelerator.unwrap_model(self.model)).eval()
                record["val_clicks_dice"] = validation_click_dice(sam, self.processor, self.val_loader, accelerator)
                score = record["val_box_and_clicks"] = (result["dice"] + record["val_clicks_dice"]) / 2
                sam.train()
            if is_better(score, state.best_dice):
                state.best_dice, state.best_step = score, state.step
                if accelerator.is_main_process:
                    save_pretrained_atomic(sam_of(accelerator.unwrap_model(self.model)), self.processor,
                                           self.output_dir / "best", self.settings)
            accelerator.wait_for_everyone()
        self.log(record)
        logger.info("step %d: validation Dice %.4f (best %s %.4f at step %d)", state.step, result["dice"],
                    self.train_args.metric_for_best_model, state.best_dice, state.best_step, main_process_only=True)
        self.checkpoint(step_name(state.step), keep_last=self.train_args.save_total_limit)

    def summary(self) -> dict:
        return {"best_dice": self.state.best_dice, "best_metric": self.train_args.metric_for_best_model,
                "best_step": self.state.best_step, "steps": self.state.step,
                "output_dir": str(self.output_dir)}


def train(model_args: ModelArguments, data_args: DataArguments, train_args: TrainArguments) -> dict:
    """Fine-tune, keep the best validation weights, write OUTPUT/best/, and score the test split.

    Returns:
        `{"best_dice", "best_step", "steps", "test": {...}}`; `test` is empty when skipped.
    """
    run = setup(model_args, data_args, train_args)
    with GracefulStop(on_request=run.accelerator.set_trigger) as stop:
        try:
            train_steps(run)
        except KeyboardInterrupt:
            save_interrupted(run, stop)
            raise
    if run.stopped_early:
        run.checkpoint(step_name(run.state.step), keep_last=train_args.save_total_limit)
        logger.info("Stopped after %d steps as asked; resume with --resume_from_checkpoint latest",
                    run.state.step, main_process_only=True)
        run.accelerator.end_training()
        return run.summary()
    return finish(run)


def _model_to_train(model_args: ModelArguments, train_args: TrainArguments, accelerator: Accelerator):
    """The model and processor, prompted and with the parts the strategy trains, on the device;
    and the strategy."""
    model, processor = load_model_and_processor(model_args.model_name_or_path, seed=train_args.seed,
                                                vision_attention=model_args.vision_attention)
    if accelerator.device.type == "cpu":  # now the model's size is known (core/threads.py)
        set_cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes)),
                        sum(p.numel() for p in model.parameters()))
    if model_args.model_name_or_path in BUILTIN_MODELS and train_args.learning_rate < RANDOM_WEIGHTS_MIN_LR:
        logger.warning("%s starts from random weights: at learning rate %g it learns next to nothing (the paper's "
                       "4e-6 fine-tunes a pretrained SAM). configs/demo.yaml trains tiny-sam at 2e-3.",
                       model_args.model_name_or_path, train_args.learning_rate, main_process_only=True)
    if model_args.mask_prompt != "inherit":  # saved in the config, so best/ is prompted as it was trained
        set_mask_prompt(model, model_args.mask_prompt)
    strategy = get_strategy(model_args.strategy)
    model = strategy.apply(model, lora_rank=model_args.lora_rank, lora_alpha=model_args.lora_alpha)
    if model_args.gradient_checkpointing:
        # transformers 5 renamed it; older releases have only gradient_checkpointing_enable
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    return model.to(accelerator.device), processor, strategy


def setup(model_args: ModelArguments, data_args: DataArguments, train_args: TrainArguments) -> Run:
    """Check the settings and the output folder, load data and model, build loaders (and caches),
    optimiser and schedule, and restore a checkpoint when resuming."""
    accelerator = make_accelerator(train_args, data_args.interactive)
    set_seed(train_args.seed)
    output_dir = Path(train_args.output_dir)
    check_model_available(model_args.model_name_or_path)  # before any data is read: offline and uncached fails now
    _record_data_split(data_args)
    settings = config_to_dict(model_args, data_args, train_args)
    _claim_output_dir(output_dir, train_args, accelerator)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))

    with accelerator.main_process_first():  # one process writes demo data; the others read it
        dataset = load_polyp_data(data_args.data, data_args.split_preset, data_args.val_fraction,
                                  data_args.split_seed, data_args.generate_demo_data)
    dataset = _select(dataset, data_args)

    model, processor, strategy = _model_to_train(model_args, train_args, accelerator)
    train_set, train_loader, val_loader = _loaders(
        model_args, data_args, train_args, dataset, model, processor, accelerator
    )
    loss_fn = get_loss(train_args.loss)

    if data_args.interactive:  # a step's rounds in one forward call (training.interactive.PromptRounds)
        model = PromptRounds(model)
    # Freeze what the prompts never reach, before DDP wraps the model (see freeze_unreached).
    trainable_before, total = count_parameters(model)
    probe = next(iter(train_loader))
    probe = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in probe.items()}
    if data_args.interactive:  # every path a step may take: a box start, a click start, a correction round
        probe["point_first"] = torch.arange(len(probe["index"]), device=accelerator.device) % 2 == 1
    unreached = freeze_unreached(model, step_loss(model, probe, loss_fn, data_args, train_args.seed, 0,
                                                  rounds=max(data_args.interactive_rounds, 2 if data_args.interactive
                                                             else 1)))
    trainable, _ = count_parameters(model)
    logger.info(
        "Strategy %s: %d of %d parameters trainable (%d frozen as unreachable from box prompts: %s)",
        strategy.name, trainable, total, trainable_before - trainable, ", ".join(unreached) or "none",
        main_process_only=True,
    )

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=train_args.learning_rate, weight_decay=train_args.weight_decay,
                                  fused=accelerator.device.type == "cuda")
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    accum = accelerator.gradient_accumulation_steps
    total_steps = train_args.max_train_steps or train_args.num_train_epochs * math.ceil(len(train_loader) / accum)
    # The scheduler is stepped by hand once per optimiser step (not prepared: Accelerate would
    # step it once per process); its state is saved as JSON in trainer_state.json.
    scheduler = build_scheduler(optimizer, train_args, total_steps)
    if accelerator.log_with:
        accelerator.init_trackers("polyp-sam", config={k: v for k, v in settings.items() if v is not None})

    run = Run(model_args, data_args, train_args, accelerator, settings, dataset, model, processor, params,
              optimizer, scheduler, loss_fn, train_set, train_loader, val_loader, total_steps)
    if train_args.ema_decay:
        run.average = WeightAverage(params, train_args.ema_decay)
    if train_args.resume_from_checkpoint:
        path = resolve_checkpoint(output_dir, train_args.resume_from_checkpoint)
        saved = load_training_state(accelerator, path)
        restore_scheduler(scheduler, saved.pop("scheduler", None), saved["step"])
        if run.average:
            run.average.load(path)
        run.state = TrainerState(**saved)
        logger.info("Resumed from %s at step %d", path, run.state.step, main_process_only=True)
    run.step_start = run.state.batches_in_epoch
    logger.info(
        "%d training frames, %d validation; %d processes x batch %d x accumulation %d = %d per step; "
        "%d steps", len(dataset["train"]), len(dataset["validation"]), accelerator.num_processes,
        train_args.per_device_train_batch_size, accum,
        train_args.per_device_train_batch_size * accelerator.num_processes * accum, total_steps,
        main_process_only=True,
    )
    return run


def step_loss(model: torch.nn.Module, batch: dict, loss_fn, data_args: DataArguments, seed: int, epoch: int,
              rounds: int | None = None) -> torch.Tensor:
    """A micro-batch's loss: one prompt per frame and round, the rounds' losses summed
    (`training.interactive` where the settings ask for correction rounds or click starts), plus
    `click_region_weight` times each correction round's `click_region_loss`."""
    if not data_args.interactive and rounds in (None, 1):
        return batch_loss(batch_logits(model, batch), batch, loss_fn)
    weight = data_args.click_region_weight
    logits, regions = model(rounds_of=batch, rounds=rounds or data_args.interactive_rounds, seed=seed, epoch=epoch,
                            correction_click=data_args.correction_click, click_regions=bool(weight))
    loss = sum(batch_loss(low_res, batch, loss_fn) for low_res in logits)
    if weight:
        loss = loss + weight * sum(click_region_loss(low_res, batch, clicked)
                                   for low_res, clicked in zip(logits[1:], regions))
    return loss


def train_steps(run: Run) -> None:
    """Optimiser steps until the schedule ends (or `stop_after_steps`, or a Ctrl-C at a step's end,
    raised as KeyboardInterrupt), validating each epoch or every `eval_steps`."""
    state, args, accelerator = run.state, run.train_args, run.accelerator
    bar = tqdm(total=run.total_steps, initial=state.step, desc="Training",
               disable=not accelerator.is_local_main_process)
    run.model.train()
    try:
        while state.step < run.total_steps:
            if not _epoch(run, bar):  # the schedule or the session ended inside the epoch
                break
            state.epoch, state.batches_in_epoch, run.step_start = state.epoch + 1, 0, 0
            if not args.eval_steps:
                run.validate_and_keep_best()
        validated = state.validations
        if not run.stopped_early and (not validated or validated[-1]["step"] != state.step):
            run.validate_and_keep_best()  # the last step is always validated
    finally:
        bar.close()


def _epoch(run: Run, bar) -> bool:
    """The rest of the current epoch. Returns whether the epoch ran to its end."""
    state, args, accelerator = run.state, run.train_args, run.accelerator
    run.train_loader.set_epoch(state.epoch)
    run.train_set.set_epoch(state.epoch)
    batches = run.train_loader
    if state.batches_in_epoch:
        batches = accelerator.skip_first_batches(run.train_loader, state.batches_in_epoch)
    running, micro = None, 0
    for batch in batches:
        with accelerator.accumulate(run.model):
            loss = step_loss(run.model, batch, run.loss_fn, run.data_args, args.seed, state.epoch)
            accelerator.backward(loss)
            # summed on the device: a micro-batch never waits for the host
            running, micro = (loss.detach() if running is None else running + loss.detach()), micro + 1
            if accelerator.sync_gradients:
                # before the optimiser applies it: the step's loss and NaN check in one host sync
                train_loss = _end_of_step(running / micro, state.step + 1, accelerator)
                if args.max_grad_norm:
                    accelerator.clip_grad_norm_(run.params, args.max_grad_norm)
            run.optimizer.step()
            run.optimizer.zero_grad()
        state.batches_in_epoch += 1
        if not accelerator.sync_gradients:
            continue
        run.scheduler.step()
        state.step += 1
        if run.average:
            run.average.update(state.step)
        run.step_start = state.batches_in_epoch
        running, micro = None, 0
        lr = run.scheduler.get_last_lr()[0]
        bar.update(1)
        bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{lr:.2e}")
        run.add_loss(train_loss)
        if args.eval_steps and state.step % args.eval_steps == 0:
            run.validate_and_keep_best()
        elif args.checkpointing_steps and state.step % args.checkpointing_steps == 0:
            run.checkpoint(step_name(state.step), keep_last=args.save_total_limit)
        if state.step >= run.total_steps or state.step == args.stop_after_steps:
            return False
        if accelerator.check_trigger():  # Ctrl-C on some process: the step is done, every process stops here
            raise KeyboardInterrupt
    return True


def save_interrupted(run: Run, stop: GracefulStop) -> None:
    """After a Ctrl-C: discard a partial optimiser step (resume runs its micro-batches again, from
    its first) and save checkpoints/interrupted, whatever further Ctrl-C arrives meanwhile."""
    state = run.state
    discarded, state.batches_in_epoch = state.batches_in_epoch - run.step_start, run.step_start
    logger.warning("Interrupted at step %d%s: saving checkpoints/%s", state.step,
                   f" (discarding {discarded} micro-batches of step {state.step + 1})" if discarded else "",
                   INTERRUPTED, main_process_only=True)
    with stop.saving():
        run.checkpoint(INTERRUPTED)
    logger.warning("Saved checkpoints/%s at step %d; continue with --resume_from_checkpoint latest",
                   INTERRUPTED, state.step, main_process_only=True)
    run.accelerator.end_training()


def finish(run: Run) -> dict:
    """Check the processes agree, plot the curves, reload best/ and score the test split, and mark
    the run finished (train_results.json, written last)."""
    accelerator, output_dir = run.accelerator, run.output_dir
    _check_in_sync(accelerator, accelerator.unwrap_model(run.model))
    results: dict = run.summary()
    if accelerator.is_main_process:
        plot_training_curves(run.state.history, output_dir / "training_curves.png")
    # Restore the best validation weights: best/ is exactly what was kept.
    best = model_class_for(str(output_dir / "best")).from_pretrained(output_dir / "best").to(accelerator.device)
    if run.train_args.evaluate_test and "test" in run.dataset and accelerator.is_main_process:
        results["test"] = test_report(best, run.processor, run.dataset["test"], run.data_args.prompt_mode,
                                      accelerator.device, batch_size=run.train_args.eval_batch_size,
                                      strategy=run.model_args.strategy)
        (output_dir / "test_results.json").write_text(json.dumps(results["test"], indent=1))
    if accelerator.is_main_process:  # written last: its presence says the run finished
        (output_dir / FINISHED).write_text(json.dumps(run.summary(), indent=1))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


def _record_data_split(data_args: DataArguments) -> None:
    """Make the run record the split the data really holds: a prepared dataset's recorded split
    replaces the split settings (which apply to raw roots only), with a warning where they differ."""
    recorded = recorded_split(data_args.data) if is_prepared(data_args.data) else None
    if recorded is None:
        return
    given = (data_args.split_preset, data_args.val_fraction, data_args.split_seed)
    if given != (recorded.preset, recorded.val_fraction, recorded.seed):
        logger.warning("%s was prepared with split %s (val_fraction %s, seed %s); recording that, not the "
                       "settings' %s", data_args.data, recorded.preset, recorded.val_fraction, recorded.seed, given)
    data_args.split_preset, data_args.val_fraction, data_args.split_seed = (
        recorded.preset, recorded.val_fraction, recorded.seed)


# what a run writes into OUTPUT_DIR: an earlier run is recognised by any of these
RUN_FILES = ("best", "checkpoints", "metrics.jsonl", "test_results.json", "training_curves.png", "config.yaml",
             FINISHED)


def _claim_output_dir(output_dir: Path, train_args: TrainArguments, accelerator: Accelerator) -> None:
    """Refuse an OUTPUT_DIR that holds an earlier run unless resuming it or told to overwrite it
    (then remove that run's files, and only those), as the transformers Trainer refuses: two runs in
    one folder would mix their best/, checkpoints and logs without a word.

    Raises:
        ValueError: the folder holds an earlier run and neither --resume_from_checkpoint nor
            --overwrite_output_dir was given.
    """
    earlier = [name for name in RUN_FILES if (output_dir / name).exists()]
    if earlier and not train_args.resume_from_checkpoint:
        if not train_args.overwrite_output_dir:
            raise ConfigError(
                f"{output_dir} holds an earlier run ({', '.join(earlier)}). Continue it with "
                "--resume_from_checkpoint latest, train into a new --output_dir, or pass "
                "--overwrite_output_dir to replace it."
            )
        if accelerator.is_main_process:
            logger.warning("Removing the earlier run in %s (%s): --overwrite_output_dir", output_dir,
                           ", ".join(earlier))
            for name in earlier:
                path = output_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    accelerator.wait_for_everyone()  # no process may see the files the main process writes next


def _end_of_step(loss: torch.Tensor, step: int, accelerator: Accelerator) -> float:
    """The optimiser step's mean loss over all processes: one reduce and one host read per step. A
    NaN or infinite loss on any process makes the mean non-finite on every process, so all stop
    together and none waits in a collective.

    Raises:
        NonFiniteLossError: the loss is NaN or infinite (before the optimiser applies it).
    """
    value = accelerator.reduce(loss.float(), reduction="mean").item()
    if not math.isfinite(value):
        own = loss.item()
        raise NonFiniteLossError(
            f"Loss is {own if not math.isfinite(own) else 'not finite on another process'} at step {step}: "
            "stopping. Lower --learning_rate, try --mixed_precision bf16 instead of fp16, or set --max_grad_norm.")
    return value


def _check_in_sync(accelerator: Accelerator, model: torch.nn.Module) -> None:
    """Log each rank's weight checksum, and fail if the ranks disagree (a DDP bug, never silent)."""
    checksum = weights_checksum(model).to(accelerator.device)
    logger.info("rank %d done, weight checksum %.10e", accelerator.process_index, checksum[0].item(),
                main_process_only=False)
    every = accelerator.gather(checksum[None]).cpu()
    if not torch.allclose(every, every[:1].expand_as(every), rtol=1e-9, atol=0):
        raise RuntimeError(f"Weights differ across processes after training: {every.tolist()}")
    logger.info("Weights identical on all %d processes", accelerator.num_processes, main_process_only=True)
