"""Where checkpoints are written: resumable training state, and `best/` in plain Hugging Face format.

Layout of a run's output folder:

    OUTPUT/checkpoints/step-000120/   accelerator.save_state + trainer_state.json (resumable)
    OUTPUT/checkpoints/interrupted/   the same, written on Ctrl-C
    OUTPUT/best/                      config.json, model.safetensors, preprocessor_config.json

Every folder is written under a temporary name and renamed into place, so an interrupted save
leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate.utils import load

from polyp_sam_hf.core.errors import CheckpointError, MissingCheckpointError
from polyp_sam_hf.core.files import replace_atomically, restore_replaced, staging_folder
from polyp_sam_hf.models.provenance import TRAINING_SETTINGS
from polyp_sam_hf.training.averaging import WeightAverage
from polyp_sam_hf.training.strategies import has_adapters, merge_adapters

logger = logging.getLogger(__name__)

class _TiedEmbeddingNote(logging.Filter):
    """SAM's prompt encoder shares its positional embedding with the model
    (`prompt_encoder.shared_embedding.positional_embedding` is `shared_image_embedding`'s tensor).
    safetensors stores a shared tensor once, and Accelerate says so on every checkpoint ("Removed
    shared tensor ... check by verifying that you don't receive any warning while reloading").
    Loading re-ties it: resuming gives the uninterrupted run's weights exactly (tested). That one
    line, for that one tensor, is dropped; any other shared tensor is still reported."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("Removed shared tensor" in message and
                    "{'prompt_encoder.shared_embedding.positional_embedding'}" in message)


logging.getLogger("accelerate.utils.other").addFilter(_TiedEmbeddingNote())

STATE_FILE = "trainer_state.json"
FINISHED = "train_results.json"  # OUTPUT/train_results.json: written last, when a run has finished
STEP_PREFIX = "step-"
INTERRUPTED = "interrupted"


@contextmanager
def _quiet(*names: str):
    """Raise the named loggers to WARNING for the duration (their warnings and errors still show)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def save_training_state(accelerator, output_dir: str | Path, name: str, state: dict,
                        keep_last: int | None = None, average: WeightAverage | None = None) -> Path:
    """Save model, optimiser, scheduler, RNG states and `state` (and the weight `average`, when
    training keeps one) as checkpoints/`name`, atomically.

    Called on every process (Accelerate writes each process's RNG state). With `keep_last`, only
    the newest `keep_last` step checkpoints are kept.
    """
    root = checkpoints_dir(output_dir)
    final = root / name
    tmp = final.with_name(f".{name}.tmp")
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        tmp = staging_folder(final)  # the main process empties it; every process writes into it
    accelerator.wait_for_everyone()
    with _quiet("accelerate.accelerator", "accelerate.checkpointing"):  # its six INFO lines: one of ours instead
        accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
        if average is not None:
            average.save(tmp)
        replace_atomically(tmp, final)
        # Rotation here, not through ProjectConfiguration(total_limit): Accelerate's automatic naming
        # writes into the final folder and prunes before it is complete, so a crash mid-save could
        # leave no whole checkpoint (tests/test_training_runs.py::test_interrupted_save_leaves_the_previous_checkpoint)
        if keep_last is not None:  # never fewer than one: the checkpoint just written is kept
            steps = sorted(p for p in root.glob(f"{STEP_PREFIX}*") if p.is_dir())
            for stale in steps[: max(len(steps) - max(keep_last, 1), 0)]:
                shutil.rmtree(stale)
        logger.info("Saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def step_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:07d}"


def _read_state(path: Path) -> dict | None:
    """A checkpoint's trainer state, or None when the file is damaged."""
    try:
        state = json.loads((path / STATE_FILE).read_text())
        int(state["step"])
        return state
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resolve_checkpoint(output_dir: str | Path, value: str) -> Path:
    """`latest` -> the complete checkpoint with the highest step under OUTPUT/checkpoints; a path
    -> that folder, checked.

    Raises:
        FileNotFoundError: nothing to resume from; the message says where it looked.
        ValueError: the chosen checkpoint's trainer_state.json is damaged; the message names it and
            the newest readable checkpoint to resume from instead.
    """
    root = checkpoints_dir(output_dir)
    for replaced in (root / INTERRUPTED, Path(output_dir) / "best"):
        restore_replaced(replaced)
    folders = [p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".") and (p / STATE_FILE).is_file()]
    readable = {p: state for p in folders if (state := _read_state(p)) is not None}
    newest_readable = max(readable, key=lambda p: (readable[p]["step"], p.name == INTERRUPTED), default=None)
    offer = (f" Resume from {newest_readable} (step {readable[newest_readable]['step']}) with "
             f"--resume_from_checkpoint {newest_readable}." if newest_readable else "")
    if value != "latest":
        path = Path(value)
        if not (path / STATE_FILE).is_file():
            raise MissingCheckpointError(f"{path} is not a complete checkpoint (no {STATE_FILE}).")
        if _read_state(path) is None:
            raise CheckpointError(f"{path / STATE_FILE} is damaged (not the JSON a checkpoint writes).{offer}")
        return path
    if not folders:
        raise MissingCheckpointError(f"No checkpoint to resume from in {root}.")
    newest_step = readable[newest_readable]["step"] if newest_readable else -1
    for path in sorted(p for p in folders if p not in readable):
        step = int(path.name[len(STEP_PREFIX):]) if path.name.startswith(STEP_PREFIX) else None
        if step is None or step > newest_step:  # it may be the latest: do not guess
            raise CheckpointError(f"{path / STATE_FILE} is damaged (not the JSON a checkpoint writes), so the latest "
                             f"checkpoint cannot be told.{offer}")
        logger.warning("Ignoring %s: its %s is damaged; an older checkpoint than %s", path, STATE_FILE, newest_readable)
    return newest_readable


def _check_rng_file(accelerator, path: Path) -> None:
    """Accelerate reads each process's RNG states itself and, when they cannot be read, says so
    only at INFO level; read them first (as data only) so the user sees a warning."""

    rng_file = path / f"random_states_{accelerator.process_index}.pkl"
    try:
        load(rng_file)  # weights_only=True, numpy arrays allowed: data, never code
    except Exception as err:  # missing, truncated, or holding objects that are not plain data
        logger.warning("Cannot read the random states %s (%s: %s); resuming without them: the weights, optimiser, "
                       "schedule and data order are restored, random draws outside them will differ from an "
                       "uninterrupted run.", rng_file, type(err).__name__, str(err)[:200])


def load_training_state(accelerator, path: str | Path) -> dict:
    """Restore everything `save_training_state` saved; returns the trainer state dict (with the
    learning-rate scheduler's state under `scheduler`, see `restore_scheduler`).

    Training always resumes at the first micro-batch of an optimiser step (an interrupted partial
    step is discarded), so Accelerate's micro-batch counter, which it saves and restores, is reset:
    restored mid-step it would apply the next step after too few micro-batches.
    """
    path = Path(path)
    pickled = sorted(p.name for p in path.glob("custom_checkpoint_*.pkl"))
    if pickled:
        raise CheckpointError(f"{path} holds {', '.join(pickled)}: a pickled object (an older version's scheduler), which "
                         "could run code when loaded, so it is never read. If the checkpoint is your own, delete that "
                         "file and resume again: the schedule is replayed from the recorded step.")
    _check_rng_file(accelerator, path)
    accelerator.load_state(str(path))
    accelerator.step = 0
    return json.loads((Path(path) / STATE_FILE).read_text())


def save_pretrained_atomic(model: torch.nn.Module, processor, folder: str | Path,
                           training_settings: dict | None = None) -> Path:
    """Write a plain `SamModel` folder (LoRA merged) that vanilla `from_pretrained` loads.

    Files: `config.json`, `model.safetensors`, `preprocessor_config.json` (and any other processor
    files), and with `training_settings` the run's settings as `polyp_sam_training.json` (what it
    trained on and how: the split and its seed among them). Written under a temporary name, then
    renamed.
    """
    folder = Path(folder)
    tmp = staging_folder(folder)
    plain = merge_adapters(copy.deepcopy(model)) if has_adapters(model) else model
    plain.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    # preprocessor_config.json too: what transformers 4.x and the Hub's widgets read
    processor.image_processor.save_pretrained(tmp)
    if training_settings is not None:
        (tmp / TRAINING_SETTINGS).write_text(json.dumps(training_settings, indent=1))
    replace_atomically(tmp, folder)
    return folder


def restore_scheduler(scheduler, saved: dict | None, step: int) -> None:
    """Put the learning-rate scheduler where the checkpoint left it.

    Its state travels as JSON in trainer_state.json, never as a pickle (Accelerate would load a
    registered object's pickle with `weights_only=False`, which runs any code planted in it).
    Checkpoints of older versions carry no such state: the schedule, a pure function of the step,
    is then replayed to `step`.
    """
    if saved is not None:
        scheduler.load_state_dict(saved)
        return

    logger.warning("The checkpoint has no scheduler state in %s (an older version wrote it): replaying the "
                   "schedule to step %d", STATE_FILE, step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": intended here
        for _ in range(step):
            scheduler.step()
