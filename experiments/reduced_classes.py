"""Fewer target classes remove most weights but little energy (the observation of Yang, Chen, Sze,
CVPR 2017: AlexNet cut from 1,000 to 10 classes loses over 100x of its weights but only about 1.5x of
its energy), shown on our trained LeNet-5 (Fashion-MNIST).

For each class count k (10, 5, 2: the first k classes): the trained baseline's classifier keeps its k
rows, the network is fine-tuned on the k-class training images, then pruned with the magnitude
method (same driver and threshold rule as prune_lenet.py: 1 point of held-out top-1 on the k-class
problem). Easier problems prune further, but the feature maps the simulator moves stay.

    python experiments/reduced_classes.py            # k = 10, 5, 2 (the LeNet baseline is trained first if absent)
    python experiments/reduced_classes.py --quick    # seconds: a tiny baseline, k = 10 and 2, one short pass

Writes into --out: ``summary.csv`` (one row per k: accuracy, non-zero weights, MACs not skipped,
energy, reductions against the unpruned 10-class network), ``reduced_classes.png`` (from summary.csv)
and each run's ``decisions.csv`` and state under ``k<k>/``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from networks import data as datasets
from networks import training
from networks.data import Dataset
from networks.network import Network
from pruning.cli import QUICK_SETTINGS, _quick_baseline
from pruning.driver import MAGNITUDE, PruningData, Settings, run_pruning
from pruning.energy import cached_policy, network_totals, simulate_energy
from pruning.report import write_csv_atomic
from sim.config import load_architecture

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "results" / "reduced_classes"
ARCHITECTURE = "eyeriss_energy_tool"
CLASSIFIER = "fc5"


def restrict(dataset: Dataset, classes: int) -> Dataset:
    chosen = dataset.labels < classes
    return Dataset(dataset.images[chosen], dataset.labels[chosen], dataset.classes[:classes], dataset.source)


def with_classes(network: Network, classes: int) -> Network:
    """The network with its classifier cut to the first ``classes`` outputs (weights kept)."""
    layers = [dataclasses.replace(layer, out_features=classes) if layer.name == CLASSIFIER else layer
              for layer in network.layers]
    params = {k: {p: a.copy() for p, a in v.items()} for k, v in network.params.items()}
    params[CLASSIFIER] = {p: a[:classes] for p, a in params[CLASSIFIER].items()}
    return Network(name=f"{network.name}_{classes}cls", input_shape=network.input_shape, layers=layers, params=params)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {DEFAULT_OUT}[_quick])")
    parser.add_argument("--classes", type=int, nargs="+", default=None, help="class counts (default 10 5 2)")
    parser.add_argument("--max-passes", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or Path(f"{DEFAULT_OUT}{'_quick' if args.quick else ''}")
    arch = load_architecture(ARCHITECTURE)
    rng = np.random.default_rng(args.seed)
    if args.quick:
        subset = datasets.load_subset()
        half = len(subset) // 2
        train = Dataset(subset.images[:half], subset.labels[:half], subset.classes, subset.source)
        test = Dataset(subset.images[half:], subset.labels[half:], subset.classes, subset.source)
        baseline = _quick_baseline("lenet5", train, out / "baseline", seed=args.seed)
        class_counts = args.classes or [10, 2]
        settings = Settings(seed=args.seed, **QUICK_SETTINGS)
        heldout = 300
    else:
        baseline = training.load_or_train_baseline("lenet5", seed=args.seed, progress=not args.no_progress)
        train = datasets.load_fashion_mnist("train")
        test = datasets.load_fashion_mnist("test")
        class_counts = args.classes or [10, 5, 2]
        settings = Settings(seed=args.seed, max_passes=args.max_passes, finetune_images=20_000)
        heldout = 2_500
    policy = cached_policy(None)
    energy_images = test.images[:1]
    reference = network_totals(simulate_energy(baseline, arch, energy_images, mapping_policy=policy))
    rows = []
    for k in class_counts:
        k_train, k_test = restrict(train, k), restrict(test, k)
        order = rng.permutation(len(k_test))
        split_at = min(heldout, len(order) // 2)
        held, rest = order[:split_at], order[split_at:]
        network = with_classes(baseline, k)
        if k < len(train.classes):
            training.fit(network, train_images=k_train.images, train_labels=k_train.labels, epochs=1,
                         rng=np.random.default_rng((args.seed, k)), lr=0.01,
                         progress=False)
        data = PruningData(train_images=k_train.images, train_labels=k_train.labels,
                           calibration_images=k_train.images[:500], heldout_images=k_test.images[held],
                           heldout_labels=k_test.labels[held], energy_images=energy_images)
        run = run_pruning(network, arch, data, method=MAGNITUDE, settings=settings, out_dir=out / f"k{k}",
                          mapping_policy=policy, progress=not args.no_progress)
        write_csv_atomic(run.decisions, out / f"k{k}" / "decisions.csv")
        for label, model in (("unpruned", network), ("magnitude", run.network)):
            totals = network_totals(simulate_energy(model, arch, energy_images, mapping_policy=policy))
            rows.append({
                "classes": k, "model": label,
                "top1_test": training.evaluate(model, k_test.images[rest], k_test.labels[rest])["top1"],
                "weights_nonzero": int(totals["weights_nonzero"]), "macs_performed": int(totals["macs_performed"]),
                "energy_total": totals["energy_total"],
                "weight_reduction": reference["weights_nonzero"] / totals["weights_nonzero"],
                "energy_reduction": reference["energy_total"] / totals["energy_total"],
                "energy_unit": arch.energy_unit,
            })
    summary = pd.DataFrame(rows)
    write_csv_atomic(summary, out / "summary.csv")
    plot(out / "summary.csv", out / "reduced_classes.png")
    print(f"LeNet-5 (Fashion-MNIST) on {ARCHITECTURE}: reductions against the unpruned 10-class network"
          + (" (QUICK: tiny baseline, not comparable)" if args.quick else ""))
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nwrote {out}/ (summary.csv, reduced_classes.png, k*/decisions.csv)")
    return 0


def plot(summary_csv: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.read_csv(summary_csv)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    labels = [f"{r.classes} classes\n{r.model}" for r in table.itertuples()]
    x = np.arange(len(table))
    ax.bar(x - 0.2, table.weight_reduction, 0.4, label="weight reduction")
    ax.bar(x + 0.2, table.energy_reduction, 0.4, label="energy reduction")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("x lower than the unpruned 10-class network")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
