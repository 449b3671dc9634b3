"""Energy-aware against magnitude pruning of the CIFAR-shaped CNN (three conv-BN-ReLU stages and
two FC layers) trained on Fashion-MNIST, on ``eyeriss_energy_tool``, threshold: 1 point of held-out
top-1 below the trained baseline.

    python experiments/prune_cifar_cnn.py             # full run (baseline trained first if absent)
    python experiments/prune_cifar_cnn.py --quick     # seconds: a tiny baseline, one short pass

Same outputs and data split as prune_lenet.py (see ``pruning.compare``).
"""
from __future__ import annotations

import sys

from pruning.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], baseline="cifar_cnn", description=__doc__))
