"""Energy-aware against magnitude pruning of LeNet-5 trained on Fashion-MNIST, on the
energy-aware-pruning paper's energy-tool architecture (``eyeriss_energy_tool``: a MAC with a zero
operand is skipped, DRAM traffic is compressed), threshold: 1 point of held-out top-1 below the
trained baseline.

    python experiments/prune_lenet.py                 # full run (baseline trained first if absent)
    python experiments/prune_lenet.py --quick         # seconds: a tiny baseline, one short pass

Decisions use 5,000 test images (held out from training); the reported test accuracy uses the other
5,000. Writes into --out the files of ``pruning.compare`` (decisions.csv, summary.csv, layers.csv,
accuracy_vs_energy.png, layer_energy.png, manifest.json). A stopped run resumes where it stopped.
"""
from __future__ import annotations

import sys

from pruning.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], baseline="lenet5", description=__doc__))
