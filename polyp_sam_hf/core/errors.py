"""The library's own errors. Each message names what is wrong (the file, the setting, the value) and
what to do; the command lines print it as one line. Anything else is a bug and keeps its
traceback. Each class also derives from the built-in error it refines, so `except ValueError`
around library calls keeps working.
"""

from __future__ import annotations


class PolypSamError(Exception):
    """Base of every error this library raises on purpose."""


class ConfigError(PolypSamError, ValueError):
    """A setting, flag or argument that cannot be used as given."""


class DataError(PolypSamError, ValueError):
    """A data file or dataset that cannot be used as it is."""


class ModelLoadError(PolypSamError, OSError):
    """A model that cannot be loaded."""


class CheckpointError(PolypSamError, ValueError):
    """A checkpoint, cache or converted weights file that cannot be used as it is."""


class MissingCheckpointError(PolypSamError, FileNotFoundError):
    """Nothing to resume from where it was looked for."""


class NonFiniteLossError(PolypSamError, FloatingPointError):
    """The loss became NaN or infinite; training stops rather than corrupt the weights."""


class UploadTargetError(PolypSamError, ValueError):
    """The folder given for the upload cannot be used without deleting what is not ours."""


class ExportCheckError(PolypSamError, RuntimeError):
    """The export does not load on its own, or gives other logits than the source: nothing is uploaded."""


class MissingTokenError(PolypSamError, RuntimeError):
    """No Hugging Face token: nothing is exported or uploaded."""


class WeightsUnavailable(PolypSamError, OSError):
    """The checkpoint is not cached and cannot be downloaded (no package index, no pip)."""


class StepFailedError(PolypSamError, RuntimeError):
    """A command of the reproduction exited with an error; running again resumes at it."""


# What the command lines print as one line: the library's errors, and the file system refusing a
# path the user gave (no such folder, no permission). Anything else keeps its traceback.
REPORTED = (PolypSamError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
