"""`python -m polyp_sam_hf ...`: the `polyp-sam` command line (`polyp_sam_hf.commands.cli`, which
asks OpenMP to wait passively before anything loads PyTorch)."""

import sys

from polyp_sam_hf.commands.cli import main

sys.exit(main())
