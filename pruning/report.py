"""Pruning outputs: ``decisions.csv`` (one row per step), the summary table in the shape of the
energy-aware-pruning paper's results table, and plots drawn from those CSVs (accuracy vs energy for
every method, per-layer energy before/after). Files are written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pruning.energy import network_totals
from sim.results import atomic_file, save_figure

SUMMARY_COLUMNS = (
    "network", "method", "top1_heldout", "top1_test", "weights_nonzero", "macs_performed", "cycles_total",
    "energy_total", "energy_normalized", "weight_reduction", "mac_reduction", "energy_reduction",
    "energy_reduction_vs_magnitude", "energy_unit",
)


def write_csv_atomic(table: pd.DataFrame, path: str | Path) -> Path:
    with atomic_file(path) as temp:
        table.to_csv(temp, index=False)
    return Path(path)


def summary_row(network_name: str, method: str, layers: pd.DataFrame, *, top1_heldout: float, top1_test: float,
                unpruned: dict[str, float], energy_unit: str) -> dict:
    totals = network_totals(layers)
    return {
        "network": network_name, "method": method, "top1_heldout": top1_heldout, "top1_test": top1_test,
        "weights_nonzero": int(totals["weights_nonzero"]), "macs_performed": int(totals["macs_performed"]),
        "cycles_total": int(totals["cycles_total"]), "energy_total": totals["energy_total"],
        "energy_normalized": totals["energy_total"] / unpruned["energy_total"],
        "weight_reduction": unpruned["weights_nonzero"] / max(1.0, totals["weights_nonzero"]),
        "mac_reduction": unpruned["macs_performed"] / max(1.0, totals["macs_performed"]),
        "energy_reduction": unpruned["energy_total"] / totals["energy_total"],
        "energy_unit": energy_unit,
    }


def summary_table(rows: list[dict]) -> pd.DataFrame:
    """Adds ``energy_reduction_vs_magnitude`` (magnitude energy / this row's energy) when a
    ``magnitude`` row exists."""
    table = pd.DataFrame(rows)
    magnitude = table.loc[table.method == "magnitude", "energy_total"]
    table["energy_reduction_vs_magnitude"] = (
        float(magnitude.iloc[0]) / table.energy_total if len(magnitude) else np.nan
    )
    return table[[c for c in SUMMARY_COLUMNS if c in table.columns]]


def plot_accuracy_vs_energy(decisions_csv: str | Path, out_png: str | Path, *, title: str = "") -> Path:
    """Held-out accuracy against simulated energy after every step, one line per method, from
    ``decisions.csv`` (its ``run`` column names the method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.read_csv(decisions_csv)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for run, rows in table.groupby("run", sort=False):
        first = rows.iloc[0]
        energy = np.r_[first.energy_total_before, rows.energy_total_after]
        accuracy = np.r_[first.accuracy_before, rows.accuracy_after]
        (line,) = ax.plot(energy, 100 * accuracy, marker=".", label=run)
        tuned = rows[rows.method == "finetune"]
        ax.scatter(tuned.energy_total_after, 100 * tuned.accuracy_after, marker="o", s=40, zorder=3,
                   color=line.get_color(), label=f"{run}: after fine-tune")
    if len(table):
        ax.axhline(100 * table.threshold.min(), color="grey", ls="--", lw=1, label="threshold")
    ax.set(xlabel="simulated energy (network)", ylabel="held-out top-1 (%)", title=title or "accuracy vs energy")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out_png)


def plot_layer_energy(layers_csv: str | Path, out_png: str | Path, *, title: str = "") -> Path:
    """Per-layer energy of each model (column ``model``) side by side, from a layers CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.read_csv(layers_csv)
    models = list(dict.fromkeys(table.model))
    layer_names = list(dict.fromkeys(table.layer))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(layer_names) + 2), 4.5))
    for i, model in enumerate(models):
        energy = table[table.model == model].set_index("layer").reindex(layer_names).energy_total
        ax.bar(np.arange(len(layer_names)) + (i - (len(models) - 1) / 2) * width, energy, width, label=model)
    unit = table.energy_unit.iloc[0] if "energy_unit" in table and len(table) else ""
    ax.set_xticks(np.arange(len(layer_names)), layer_names, rotation=45, ha="right")
    ax.set(ylabel=f"energy ({unit})", title=title or "per-layer energy before and after pruning")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return _save(fig, out_png)


def _save(fig, out_png: str | Path) -> Path:
    fig.tight_layout()
    return save_figure(fig, out_png, dpi=120)
