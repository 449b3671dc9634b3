"""Energy-aware against magnitude pruning on one trained network: both methods run with the same
threshold, data and fine-tuning budget, then the outputs of the comparison are written:

- ``decisions.csv``: every step of every run (column ``run`` names the method);
- ``summary.csv``: one row per model (unpruned, magnitude, energy-aware) in the shape of the
  energy-aware-pruning paper's results table, with test accuracy on images no decision saw;
- ``layers.csv``: per-layer simulation of each model (column ``model``);
- ``accuracy_vs_energy.png``, ``layer_energy.png``: drawn from those CSVs;
- ``<method>/``: each run's resumable state and its output model (``best.npz``).
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from networks import training
from networks.network import Network
from pruning.driver import METHODS, PruningData, Settings, run_pruning
from pruning.energy import MappingPolicy, cached_policy, network_totals, simulate_energy
from pruning.report import (
    plot_accuracy_vs_energy, plot_layer_energy, summary_row, summary_table, write_csv_atomic,
)
from pruning.selection import ALL_LAYERS, LayerSelector
from pruning.state import write_json_atomic
from sim.arch import Architecture


@dataclass(frozen=True)
class Split:
    data: PruningData
    test_images: np.ndarray
    test_labels: np.ndarray


def split_data(train, test, *, rng: np.random.Generator, heldout: int, calibration: int, test_count: int | None = None,
               energy_batch: int = 1) -> Split:
    """Held-out decisions on ``heldout`` images of the test split, reported accuracy on the rest of
    it (disjoint), calibration on ``calibration`` training images, the simulator on the first
    ``energy_batch`` held-out images."""
    order = rng.permutation(len(test))
    held, rest = order[:heldout], order[heldout:]
    if test_count is not None:
        rest = rest[:test_count]
    calib = np.sort(rng.choice(len(train), min(calibration, len(train)), replace=False))
    data = PruningData(
        train_images=train.images, train_labels=train.labels, calibration_images=train.images[calib],
        heldout_images=test.images[held], heldout_labels=test.labels[held], energy_images=test.images[held[:energy_batch]],
    )
    return Split(data=data, test_images=test.images[rest], test_labels=test.labels[rest])


def compare(
    network: Network, arch: Architecture, split: Split, *, settings: Settings, out_dir: str | Path,
    methods: tuple[str, ...] = ("magnitude", "energy_aware"), selector: LayerSelector = ALL_LAYERS,
    mapping_policy: MappingPolicy | None = None, progress: bool = True,
) -> pd.DataFrame:
    """Run every method on ``network`` and write the comparison into ``out_dir``; returns the summary."""
    out_dir = Path(out_dir)
    data = split.data
    test_top1 = lambda net: training.evaluate(net, split.test_images, split.test_labels)["top1"]  # noqa: E731
    held_top1 = lambda net: training.evaluate(net, data.heldout_images, data.heldout_labels)["top1"]  # noqa: E731
    mapping_policy = cached_policy(mapping_policy)
    simulate = lambda net: simulate_energy(net, arch, data.energy_images, mapping_policy=mapping_policy)  # noqa: E731
    unpruned_layers = simulate(network)
    unpruned = network_totals(unpruned_layers)
    rows = [summary_row(network.name, "unpruned", unpruned_layers, top1_heldout=held_top1(network),
                        top1_test=test_top1(network), unpruned=unpruned, energy_unit=arch.energy_unit)]
    layer_tables = [unpruned_layers.assign(model="unpruned")]
    decision_tables = []
    for name in methods:
        run = run_pruning(network, arch, data, method=METHODS[name], settings=settings, selector=selector,
                          out_dir=out_dir / name, mapping_policy=mapping_policy, progress=progress)
        layers = simulate(run.network)
        rows.append(summary_row(network.name, name, layers, top1_heldout=held_top1(run.network),
                                top1_test=test_top1(run.network), unpruned=unpruned, energy_unit=arch.energy_unit))
        layer_tables.append(layers.assign(model=name))
        decision_tables.append(run.decisions.assign(run=name))
        rows[-1]["stop_reason"] = run.state.get("stop_reason", "")
    summary = summary_table(rows)
    summary["stop_reason"] = [row.get("stop_reason", "") for row in rows]
    write_csv_atomic(pd.concat(decision_tables, ignore_index=True), out_dir / "decisions.csv")
    write_csv_atomic(summary, out_dir / "summary.csv")
    layer_table = pd.concat(layer_tables, ignore_index=True)
    front = ["model", "layer", "weights", "weights_nonzero"]
    write_csv_atomic(layer_table[front + [c for c in layer_table.columns if c not in front]], out_dir / "layers.csv")
    plot_accuracy_vs_energy(out_dir / "decisions.csv", out_dir / "accuracy_vs_energy.png",
                            title=f"{network.name} on {arch.name}: held-out accuracy vs energy")
    plot_layer_energy(out_dir / "layers.csv", out_dir / "layer_energy.png",
                      title=f"{network.name} on {arch.name}: per-layer energy")
    write_json_atomic(out_dir / "manifest.json", {
        "command_line": sys.argv, "network": network.name, "architecture": arch.name,
        "architecture_file": arch.source_file, "settings": asdict(settings), "methods": list(methods),
        "heldout_images": len(data.heldout_images), "test_images": len(split.test_images),
        "calibration_images": len(data.calibration_images), "energy_batch": len(data.energy_images),
        "mapping": "default" if mapping_policy is None else getattr(mapping_policy, "__name__", str(mapping_policy)),
    })
    return summary


def format_summary(summary: pd.DataFrame) -> str:
    table = summary.copy()
    for column in ("top1_heldout", "top1_test"):
        table[column] = (100 * table[column]).round(2)
    return table.drop(columns=["stop_reason"], errors="ignore").to_string(
        index=False, float_format=lambda v: f"{v:.4g}")


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())
