"""An exponential moving average (EMA) of the trained weights, validated and kept in place of the
last step's weights (`--ema_decay`).

After optimiser step n the average moves towards the weights:

    average <- d_n * average + (1 - d_n) * weights,   d_n = min(decay, (1 + n) / (10 + n))

The ramp d_n lets the first steps replace most of the starting point (the pretrained weights),
then the average settles on the last ~1 / (1 - decay) steps. Validation, and so best/, see the
average: it is swapped into the model for the validation and swapped out again before training
goes on. Only the trained parameters are averaged; the frozen ones are the same in both.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from polyp_sam_hf.core.errors import CheckpointError

AVERAGE_FILE = "weight_average.safetensors"  # beside the training state in a checkpoint


def _key(index: int) -> str:
    """The name of the `index`-th trained parameter's average in AVERAGE_FILE."""
    return f"{index:05d}"


def decay_at(step: int, decay: float) -> float:
    """The decay used by the update after optimiser step `step` (1-based): ramps up to `decay`."""
    return min(decay, (1 + step) / (10 + step))


class WeightAverage:
    """The average of `params` (the optimiser's parameters, in the model), one tensor each."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float) -> None:
        self.params = params
        self.decay = decay
        self.average = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the weights after optimiser step `step` (1-based)."""
        weight = 1.0 - decay_at(step, self.decay)
        for a, p in zip(self.average, self.params):
            a.lerp_(p.detach(), weight)

    @contextmanager
    def swapped_in(self):
        """Within the block the model holds the average; after it, its own weights again (exactly)."""
        with torch.no_grad():
            own = [p.detach().clone() for p in self.params]
            for p, a in zip(self.params, self.average):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, w in zip(self.params, own):
                    p.copy_(w)

    def save(self, folder: str | Path) -> None:
        """Write the average as `folder`/weight_average.safetensors."""
        save_file({_key(i): a.detach().cpu().contiguous() for i, a in enumerate(self.average)},
                  str(Path(folder) / AVERAGE_FILE))

    def load(self, folder: str | Path) -> None:
        """Read the average a checkpoint saved.

        Raises:
            CheckpointError: the checkpoint has no average, or one of other shapes (another run's).
        """
        path = Path(folder) / AVERAGE_FILE
        if not path.is_file():
            raise CheckpointError(f"{folder} has no {AVERAGE_FILE}: it was saved by a run without --ema_decay. Resume "
                                  "it without --ema_decay, or start a new run.")
        saved = load_file(str(path))
        if len(saved) != len(self.average) or any(
                saved[_key(i)].shape != a.shape for i, a in enumerate(self.average)):
            raise CheckpointError(f"{path} does not match this model's trained parameters (another run's "
                                  "checkpoint, or another strategy): resume with the settings it was saved with.")
        for i, a in enumerate(self.average):
            a.copy_(saved[_key(i)])
