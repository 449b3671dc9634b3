"""``eapsim prune``: energy-aware against magnitude pruning of a trained Fashion-MNIST baseline (or a
saved model), on an architecture preset. The experiment scripts ``prune_lenet.py`` and
``prune_cifar_cnn.py`` are this command with their baseline fixed."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from networks import training
from networks.errors import NetworkError
from pruning.driver import METHODS, Settings
from pruning.selection import LayerSelector
from sim.errors import ConfigError, UsageError

DEFAULT_HW = "eyeriss_energy_tool"
QUICK_SETTINGS = dict(max_passes=1, search_steps=1, finetune_images=200, calibration_rows=2_000)
QUICK_SPLIT = dict(heldout=100, calibration=64, test_count=100)
QUICK_TRAIN_IMAGES = 500
FULL_SPLIT = dict(heldout=5_000, calibration=1_000)


def add_arguments(parser: argparse.ArgumentParser, *, baseline: str | None = None) -> None:
    if baseline is None:
        parser.add_argument("--baseline", choices=list(training.BASELINES), default="lenet5",
                            help="trained Fashion-MNIST baseline to prune (trained first if absent; default lenet5)")
    parser.add_argument("--model", type=Path, help="prune this saved network (.npz, 1x32x32 input) instead of the baseline")
    parser.add_argument("--hw", default=DEFAULT_HW, help=f"hardware config: TOML path or preset name (default {DEFAULT_HW})")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=["magnitude", "energy_aware"])
    parser.add_argument("--accuracy-drop", type=float, default=0.01,
                        help="threshold = baseline held-out top-1 minus this fraction (default 0.01: 1 point)")
    parser.add_argument("--step-accuracy-drop", type=float, default=None,
                        help="one layer step may lose at most this fraction below the pass's start (default: down to the threshold)")
    parser.add_argument("--max-passes", type=int, default=Settings.max_passes, help="passes of layer steps + fine-tune")
    parser.add_argument("--search-steps", type=int, default=Settings.search_steps, help="bisection steps of each layer's density search")
    parser.add_argument("--min-density", type=float, default=Settings.min_density, help="lowest density of a layer (fraction of its weights)")
    parser.add_argument("--finetune-images", type=int, default=Settings.finetune_images, help="training images per fine-tune")
    parser.add_argument("--finetune-epochs", type=int, default=Settings.finetune_epochs)
    parser.add_argument("--finetune-lr", type=float, default=Settings.finetune_lr)
    parser.add_argument("--energy-budget", type=float, default=None,
                        help="stop once simulated energy <= this fraction of the unpruned network's (e.g. 0.3)")
    parser.add_argument("--layers", nargs="+", default=[], metavar="PATTERN", help="prune only layers matching these name patterns (e.g. 'conv*')")
    parser.add_argument("--layer-types", nargs="+", default=[], metavar="TYPE", help="prune only these layer types: conv, fc")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="PATTERN", help="never prune layers matching these patterns")
    parser.add_argument("--baseline-dir", type=Path, default=None,
                        help=f"where trained baselines are cached (default {training.DEFAULT_BASELINE_DIR}; with --quick: <out>/baseline)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--heldout-images", type=int, default=FULL_SPLIT["heldout"],
                        help="test images held out for the accuracy decisions; the rest of the test split reports (default 5000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a tiny baseline, 300 held-out images, one short pass: a smoke test (seconds)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default results/prune_<baseline>[_quick])")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace, *, baseline: str) -> int:
    from networks import data as datasets
    from networks.io import load_npz
    from pruning.compare import compare, format_summary, split_data
    from sim.config import load_architecture

    started = time.perf_counter()
    arch = load_architecture(args.hw)
    out = args.out or Path("results") / f"prune_{baseline}{'_quick' if args.quick else ''}"
    selector = LayerSelector(patterns=tuple(args.layers), kinds=tuple(args.layer_types), exclude=tuple(args.exclude))
    if args.model is None:  # a bad selection fails before any training
        selector.select(training.BASELINES[baseline].build())
    if args.model is not None:
        if not args.model.is_file():
            raise UsageError(f"--model {args.model}: no such file; give a network saved with networks.save_npz")
        network = load_npz(args.model)
    elif args.quick:
        network = None  # trained below on the quick data
    else:
        network = training.load_or_train_baseline(baseline, directory=args.baseline_dir or training.DEFAULT_BASELINE_DIR,
                                                  seed=args.seed, data_dir=args.data_dir, progress=not args.no_progress)
    if args.quick:  # the shipped subset (1,000 + 1,000 images): loads in a blink, enough for a smoke test
        subset = datasets.load_subset()
        half = len(subset) // 2
        train, test = (datasets.Dataset(subset.images[a:b], subset.labels[a:b], subset.classes, subset.source)
                       for a, b in ((0, half), (half, len(subset))))
        split_sizes = QUICK_SPLIT
        if network is None:
            network = _quick_baseline(baseline, train, args.baseline_dir or out / "baseline", seed=args.seed)
    else:
        train = datasets.load_fashion_mnist("train", directory=args.data_dir)
        test = datasets.load_fashion_mnist("test", directory=args.data_dir)
        if not 0 < args.heldout_images < len(test):
            raise UsageError(f"--heldout-images {args.heldout_images}: must be between 1 and {len(test) - 1} "
                             f"(the test split has {len(test)} images; the rest report the accuracy)")
        split_sizes = {**FULL_SPLIT, "heldout": args.heldout_images}
    if tuple(train.images.shape[1:]) != network.input_shape:
        raise UsageError(f"network {network.name!r} takes inputs {network.input_shape}; Fashion-MNIST images are "
                         f"{tuple(train.images.shape[1:])}")
    split = split_data(train, test, rng=np.random.default_rng(args.seed), **split_sizes)
    if args.quick:
        settings = Settings(accuracy_drop=args.accuracy_drop, energy_budget=args.energy_budget, seed=args.seed,
                            **QUICK_SETTINGS)
    else:
        settings = Settings(
            accuracy_drop=args.accuracy_drop, step_accuracy_drop=args.step_accuracy_drop, max_passes=args.max_passes,
            search_steps=args.search_steps, min_density=args.min_density, finetune_images=args.finetune_images,
            finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr, energy_budget=args.energy_budget,
            seed=args.seed,
        )
    summary = compare(network, arch, split, settings=settings, out_dir=out, methods=tuple(args.methods),
                      selector=selector, progress=not args.no_progress)
    print(f"{network.name} on {arch.name} (batch {len(split.data.energy_images)}, energy in {arch.energy_unit}); "
          f"threshold: held-out top-1 of the baseline - {100 * args.accuracy_drop:g} point(s)")
    print(format_summary(summary))
    print(f"\nwrote {out}/ (decisions.csv, summary.csv, layers.csv, accuracy_vs_energy.png, layer_energy.png) "
          f"in {time.perf_counter() - started:.0f} s")
    return 0


def _quick_baseline(name: str, train, directory: Path, *, seed: int):
    """A baseline trained for one epoch on ``QUICK_TRAIN_IMAGES`` of ``train`` (cached in ``directory``):
    a smoke test's model."""
    from networks.io import load_npz, save_npz

    path = training.baseline_paths(name, directory=directory)["model"]
    if path.is_file():
        return load_npz(path)
    rng = np.random.default_rng(seed)
    recipe = training.BASELINES[name]
    network = recipe.build().init_params(rng)
    training.fit(network, train_images=train.images[:QUICK_TRAIN_IMAGES], train_labels=train.labels[:QUICK_TRAIN_IMAGES], epochs=1, rng=rng,
                 batch_size=recipe.batch_size, lr=recipe.lr, progress=False)
    save_npz(network, path)
    return network


def main(argv: list[str] | None = None, *, baseline: str, description: str | None = None) -> int:
    """Entry point of the experiment scripts (baseline fixed)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, baseline=baseline)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        return run(args, baseline=baseline)
    except (ConfigError, NetworkError, UsageError, OSError) as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        return 2


def command(args: argparse.Namespace) -> int:
    """``eapsim prune`` (errors are turned into one line by sim.cli)."""
    return run(args, baseline=args.baseline)
