"""Ctrl-C while training, without losing or mixing work.

- The first Ctrl-C asks training to stop at the end of the optimiser step in progress: the step's
  remaining micro-batches run (with gradient accumulation a step is several of them), the step is
  applied, `checkpoints/interrupted/` is saved, and the run exits with code 130. Resuming then
  continues exactly where an uninterrupted run would be.
- A second Ctrl-C stops at once: the partial step is discarded (its micro-batches are run again on
  resume, from the step's first one) and the checkpoint of the last whole step is saved.
- Ctrl-C while that checkpoint is written is reported and ignored: the save finishes (it is
  written under a temporary name and renamed, so a kill -9 still leaves the previous one).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class GracefulStop:
    """A SIGINT handler for the training loop (installed in the main thread only).

    Use as a context manager around the loop. `requested` is this process's Ctrl-C; it also calls
    `on_request` (the training loop passes Accelerate's `set_trigger`, and `check_trigger` after
    each optimiser step makes every process stop after the same one). Wrap the final save in
    `saving()`.
    """

    def __init__(self, on_request: Callable[[], None] | None = None) -> None:
        self.requested = False
        self.on_request = on_request
        self._saving = False
        self._previous = None

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_sigint(self, signum, frame) -> None:
        if self._saving:
            logger.warning("Ctrl-C: still saving checkpoints/interrupted; it is written under a temporary name "
                           "and renamed, wait a moment.")
            return
        if self.requested:
            raise KeyboardInterrupt  # second Ctrl-C: stop now, the partial step is discarded
        self.requested = True
        if self.on_request is not None:
            self.on_request()
        logger.warning("Ctrl-C: finishing the optimiser step in progress, then saving checkpoints/interrupted. "
                       "Press Ctrl-C again to stop at once (the partial step is run again on resume).")

    def saving(self) -> "_Saving":
        return _Saving(self)


class _Saving:
    def __init__(self, stop: GracefulStop) -> None:
        self.stop = stop

    def __enter__(self) -> None:
        self.stop._saving = True

    def __exit__(self, *exc) -> None:
        self.stop._saving = False
