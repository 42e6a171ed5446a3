"""CPU threads and floats, set on purpose: a CPU shared with other work slows in proportion, not 8x.

PyTorch starts one intra-op thread per core, and its OpenMP threads spin at every barrier waiting
for each other. Alone that is fastest; beside another process doing the same, a thread that spins
holds a core the other process's thread needs, and both crawl (measured: the demo 8x slower beside
one matrix-product loop on 2 cores, for a 2x share). The library therefore sets, on the CPU:

- intra-op threads: this process's share of the cores it may run on (`sched_getaffinity`, divided
  by the processes on this machine, so two CPU ranks do not both take every core); one for a model
  under `SMALL_MODEL_PARAMETERS`, whose operators are too small to split across cores (the demo's
  `tiny-sam`: 4 epochs alone in 10.2 s on one thread, 12.2 s on two);
- inter-op threads: one (the library's models run one operator at a time);
- DataLoader workers: one thread each (PyTorch's own default in a worker, kept);
- OpenMP waiting passively (`OMP_WAIT_POLICY=PASSIVE`): read by the OpenMP runtime when it starts,
  so the command-line entry points set it before PyTorch is imported (`prefer_passive_waiting`).

Denormal floats are flushed to zero on the CPU (`flush_denormal_floats`): SAM's ViT encoder on a
frame padded to its square input (every frame that is not square, so nearly every polyp frame) makes
float32 values below 1.2e-38, which the CPU computes on slowly: measured, a padded 2-frame ViT-B
forward took 65 s with them and 11 s without, the same as on unpadded frames (TinyViT is not
affected). The setting belongs to each thread, and a thread starts with its parent's, so the entry
points set it before PyTorch starts its thread pool.

`POLYP_SAM_THREADS=torch` leaves every setting to PyTorch (the behaviour before this module);
`OMP_NUM_THREADS`, when set, is respected. `python benchmarks/shared_cpu.py` measures them
(docs/performance.md): the demo beside a matrix-product loop on 2 cores ran 5.18x slower than
alone with PyTorch's defaults, 1.56x with one thread.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

POLICY_ENV = "POLYP_SAM_THREADS"
SMALL_MODEL_PARAMETERS = 2_000_000  # tiny-sam has about 150k; MobileSAM 10M, SAM ViT-B 94M


def _policy() -> str:
    policy = os.environ.get(POLICY_ENV, "auto")
    if policy not in ("auto", "torch"):
        raise ValueError(f"{POLICY_ENV}={policy!r}: use auto (the library's thread settings) or torch (PyTorch's).")
    return policy


def prefer_passive_waiting() -> None:
    """Ask OpenMP threads to sleep instead of spin when idle. Call before `import torch` (the
    OpenMP runtime reads it once, when it loads); a value the user set is kept."""
    if _policy() == "auto":
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def flush_denormal_floats() -> bool:
    """Treat denormal floats (below 1.2e-38 in float32) as zero on the CPU, in this thread and in the
    threads it starts from now on (PyTorch's pool among them, when it has not started yet; DataLoader
    workers, forked from it). Returns whether the setting is on (False where the policy leaves it to
    PyTorch, or the CPU has no such mode)."""
    import torch  # here, not above: `prefer_passive_waiting` must run before PyTorch loads

    return _policy() == "auto" and torch.set_flush_denormal(True)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and `taskset` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_cpu_threads(local_processes: int = 1, parameters: int | None = None) -> int | None:
    """On the CPU, give this process its share of the cores as intra-op threads (one for a model of
    fewer than `SMALL_MODEL_PARAMETERS` `parameters`) and one inter-op thread. Returns the intra-op
    count, or None where the policy or `OMP_NUM_THREADS` decides."""
    import torch  # here, not above: `prefer_passive_waiting` must run before PyTorch loads

    flush_denormal_floats()
    if _policy() == "torch" or "OMP_NUM_THREADS" in os.environ:
        return None
    small = parameters is not None and parameters < SMALL_MODEL_PARAMETERS
    threads = 1 if small else max(1, available_cores() // max(local_processes, 1))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable before the first inter-op parallel work; then it stays
        pass
    logger.debug("CPU threads: %d intra-op, 1 inter-op (%d processes on %d cores)", threads, local_processes,
                 available_cores())
    return threads
