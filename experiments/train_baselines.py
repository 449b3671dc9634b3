"""Train the Fashion-MNIST baselines the pruning experiments start from.

For each model: weights (networks.save_npz), the training curve as CSV (epoch, lr, train
loss/accuracy, test top-1/top-5, seconds) and a PNG plot drawn from that CSV, all under --out:

    python experiments/train_baselines.py                      # LeNet-5 and the CIFAR-shaped CNN
    python experiments/train_baselines.py --models lenet5 --epochs 5
    python experiments/train_baselines.py --quick --out /tmp/smoke   # seconds; CI smoke test

The data are Debian's dataset-fashion-mnist files (apt-get install dataset-fashion-mnist), or
the IDX files in --data-dir. --quick trains 1 epoch on 1,000 images and, without the Debian
files, uses the subset shipped in tests/data.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from networks import training
from networks.data import DatasetError
from networks.errors import NetworkError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(training.BASELINES), choices=list(training.BASELINES))
    parser.add_argument("--epochs", type=int, default=None, help="epochs per model (default: each model's recipe)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None,
        help=f"output directory (default {training.DEFAULT_BASELINE_DIR}; with --quick {training.QUICK_BASELINE_DIR})",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with the four Fashion-MNIST IDX files")
    parser.add_argument("--quick", action="store_true", help="1 epoch on 1,000 images: a smoke test, not a baseline")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars (logs only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    for name in args.models:
        started = time.perf_counter()
        try:
            _, history, paths = training.train_baseline(
                name, directory=args.out, epochs=args.epochs, seed=args.seed, quick=args.quick,
                data_dir=args.data_dir, progress=not args.no_progress,
            )
        except (DatasetError, NetworkError) as exc:
            print(f"train_baselines: {exc}", file=sys.stderr)
            return 2
        last = history[-1]
        print(
            f"{name}: {len(history)} epoch(s), test top-1 {100 * last['test_top1']:.2f}% "
            f"top-5 {100 * last['test_top5']:.2f}%, {sum(r['seconds'] for r in history) / len(history):.1f} s/epoch, "
            f"{time.perf_counter() - started:.0f} s in all -> {paths['model']}, {paths['csv'].name}, {paths['png'].name}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
