"""`python -m polyp_sam_hf ...`: the `polyp-sam` command line (`polyp_sam_hf.commands.cli`)."""

import sys

from polyp_sam_hf.core.threads import prefer_passive_waiting

prefer_passive_waiting()  # before PyTorch loads (polyp_sam_hf/core/threads.py says why)

from polyp_sam_hf.commands.cli import main  # noqa: E402

sys.exit(main())
