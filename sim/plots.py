"""Plots, drawn from the run's CSV files (so they can be redrawn without simulating again)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sim.energy import DATA_TYPE_CLASSES, LEVEL_CLASSES  # noqa: E402

DATA_TYPE_COLORS = {"input_fmaps": "#4C72B0", "output_fmaps": "#DD8452", "weights": "#55A868", "computation": "#8C8C8C"}
LEVEL_COLORS = {"dram": "#C44E52", "global_buffer": "#DD8452", "noc": "#937860", "register_file": "#4C72B0", "mac": "#8C8C8C"}


def stacked_energy(ax, layers: pd.DataFrame, columns: dict[str, str], *, title: str, unit: str) -> None:
    bottom = pd.Series(0.0, index=layers.index)
    for key, color in columns.items():
        values = layers[f"energy_{key}"]
        ax.bar(layers["layer"], values, bottom=bottom, color=color, label=key.replace("_", " "))
        bottom = bottom + values
    ax.set_title(title)
    ax.set_ylabel(f"energy ({'normalised to one MAC' if unit == 'MAC' else unit})")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.legend(fontsize=8)


def plot_energy_breakdown(layers_csv: str | Path, out_png: str | Path, *, title: str = "") -> Path:
    layers = pd.read_csv(layers_csv)
    unit = str(layers["energy_unit"].iloc[0])
    width = max(8.0, 0.35 * len(layers) + 3)
    fig, (by_type, by_level) = plt.subplots(2, 1, figsize=(width, 8), constrained_layout=True)
    stacked_energy(by_type, layers, {k: DATA_TYPE_COLORS[k] for k in DATA_TYPE_CLASSES.values()},
                   title=f"{title}: energy per layer by data type", unit=unit)
    stacked_energy(by_level, layers, {k.lower(): LEVEL_COLORS[k.lower()] for k in LEVEL_CLASSES},
                   title="by memory level", unit=unit)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)
