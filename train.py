"""Fine-tune SAM for polyp segmentation (not yet available: the training loop is being built).

    accelerate launch train.py --config configs/paper-b-full.yaml
"""

import sys

if __name__ == "__main__":
    sys.exit("train.py: training is not implemented yet; `polyp-sam prepare` builds the data.")
