"""Moved: training now lives in ``python -m diffusemix train`` (diffusemix/train/, issue 24).

This script is a thin wrapper that passes its arguments to that command, so

    python examples/train_cnn.py cifar-100 --train data/train --val data/val --method diffusemix --cache cache/train

is ``python -m diffusemix train cifar-100 ...``. The recipes (one per experiment of the paper), the
methods (none, standard, mixup, cutmix, diffusemix, diffusemix-export), the budgets and multi-GPU runs are
described in the README's "Training recipes" and in ``python -m diffusemix train --help``;
``python -m diffusemix train --list`` lists the configs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from diffusemix.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
