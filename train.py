"""Fine-tune SAM for box-prompted polyp segmentation.

    python train.py --config configs/demo.yaml                       # offline demo, CPU, minutes
    accelerate launch train.py --config configs/paper/table2-b-full.yaml    # the paper's ViT-B run
    accelerate launch --config_file configs/accelerate/2gpu.yaml train.py --config configs/paper/table1-b-decoder.yaml

Every config key is also a flag (`--learning_rate 1e-5`, `--output-dir runs/x`); flags override
the file. `python train.py --help` lists them with their meaning.
"""

import sys

from polyp_sam_hf.core.threads import prefer_passive_waiting

prefer_passive_waiting()  # before PyTorch loads (polyp_sam_hf/core/threads.py says why)

from polyp_sam_hf.commands.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
