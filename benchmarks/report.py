"""How every benchmark hands over its figures: indented JSON on stdout, and in a file when asked."""

from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, output: Path | None) -> None:
    """Print `result` as JSON and, with `output`, write the same text there."""
    text = json.dumps(result, indent=1)
    print(text)
    if output:
        output.write_text(text + "\n")
