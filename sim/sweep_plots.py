"""Plots of a sweep, drawn from its ``summary.csv`` alone (redraw without re-running):

- ``sweep_heatmap.png``: the objective over the first two varied numeric fields (the best value
  over every other varied field, as the title says);
- ``sweep_pareto.png``: energy against cycles for every point, the Pareto front (no other point
  has both less energy and fewer cycles) marked;
- ``sweep_best_levels.png``: energy by memory level of the best points by the objective.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sim.errors import UsageError  # noqa: E402
from sim.plots import LEVEL_COLORS  # noqa: E402
from sim.results import save_figure  # noqa: E402
from sim.sweep import ENERGY_BY_LEVEL, IDENTITY_COLUMNS, METRIC_COLUMNS, OBJECTIVES  # noqa: E402

LABELS = {"energy_total": "energy", "energy_per_mac": "energy per MAC", "cycles_total": "cycles",
          "edp": "energy x cycles"}


def varied_columns(table: pd.DataFrame) -> list[str]:
    """Columns that distinguish points: the config paths, and network/batch/mapping when they vary."""
    fields = [c for c in table.columns if c not in IDENTITY_COLUMNS and c not in METRIC_COLUMNS]
    axes = [c for c in ("network", "batch", "mapping") if table[c].nunique() > 1]
    return [c for c in fields + axes if table[c].nunique() > 1]


def pareto_front(energy: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates (<= in both and < in one), by cycles."""
    order = np.lexsort((energy, cycles))
    front, best = [], np.inf
    for index in order:
        if energy[index] < best:
            front.append(index)
            best = energy[index]
    return np.array(front, dtype=np.int64)


def _unit(table: pd.DataFrame) -> str:
    unit = str(table["energy_unit"].iloc[0])
    return "normalised to one MAC" if unit == "MAC" else unit


def heatmap(ax, table: pd.DataFrame, x: str, y: str, column: str) -> None:
    grid = table.groupby([y, x])[column].min().unstack(x)
    image = ax.imshow(grid.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(grid.columns)), [f"{v:g}" if isinstance(v, float) else str(v) for v in grid.columns],
                  rotation=45, fontsize=8)
    ax.set_yticks(range(len(grid.index)), [f"{v:g}" if isinstance(v, float) else str(v) for v in grid.index], fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for row, col in zip(*np.nonzero(np.isnan(grid.to_numpy(dtype=float)))):
        ax.text(col, row, "no point\n(unmappable\nor dropped)", ha="center", va="center", fontsize=7)
    best = np.unravel_index(np.nanargmin(grid.to_numpy(dtype=float)), grid.shape)
    ax.plot(best[1], best[0], marker="*", color="white", markersize=14, markeredgecolor="black")
    plt.colorbar(image, ax=ax, label=LABELS.get(column, column) + (f" ({_unit(table)})" if column.startswith("energy") else ""))


def pareto(ax, table: pd.DataFrame) -> None:
    energy = table.energy_total.to_numpy(dtype=float)
    cycles = table.cycles_total.to_numpy(dtype=float)
    front = pareto_front(energy, cycles)
    ax.scatter(cycles, energy, s=12, color="#8C8C8C", alpha=0.6, label=f"points ({len(table)})")
    ax.plot(cycles[front], energy[front], "-o", color="#C44E52", markersize=5, label=f"Pareto front ({len(front)})")
    ax.set_xlabel("cycles")
    ax.set_ylabel(f"energy ({_unit(table)})")
    ax.legend(fontsize=8)


def best_levels(ax, table: pd.DataFrame, column: str, varied: list[str], count: int = 8) -> None:
    best = table.sort_values(column, kind="stable").head(count)
    labels = ["\n".join(f"{_short(c)}={row[c]}" for c in varied[:4]) or row["point"][:8] for _, row in best.iterrows()]
    bottom = np.zeros(len(best))
    for key in ENERGY_BY_LEVEL:
        values = best[key].to_numpy(dtype=float)
        name = key.removeprefix("energy_")
        ax.bar(range(len(best)), values, bottom=bottom, color=LEVEL_COLORS[name], label=name.replace("_", " "))
        bottom += values
    ax.set_xticks(range(len(best)), labels, fontsize=6, rotation=30, ha="right")
    ax.set_ylabel(f"energy ({_unit(table)})")
    ax.legend(fontsize=8)


def _short(column: str) -> str:
    """``level[filter_spad].capacity_words`` -> ``filter_spad.capacity_words``."""
    return column.replace("level[", "").replace("]", "")


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=110)


def plot_sweep(out_dir: str | Path, *, objective: str | None = None) -> list[Path]:
    """Draw the sweep's plots into ``out_dir`` from its ``summary.csv``; returns the files written."""
    out = Path(out_dir)
    csv = out / "summary.csv"
    if not csv.is_file():
        raise UsageError(f"{csv}: no summary.csv; run `eapsim sweep SWEEP.toml --out {out}` first")
    try:
        spec = tomllib.loads((out / "sweep.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        spec = {}
    objective = objective or spec.get("objective", "energy")
    name = spec.get("name", out.name)
    column = OBJECTIVES.get(objective, "energy_total")
    table = pd.read_csv(csv)
    table = table[table.status == "ok"]
    if table.empty:
        raise UsageError(f"{csv}: no finished point to plot")
    varied = varied_columns(table)
    written = []
    numeric = [c for c in varied if pd.api.types.is_numeric_dtype(table[c])] + [
        c for c in varied if not pd.api.types.is_numeric_dtype(table[c])]
    # The second axis: the first field not determined by the first (equal area derives one field
    # from the others: a heatmap over the pair would be a diagonal).
    pair = [(a, b) for i, a in enumerate(numeric) for b in numeric[i + 1:]
            if table.groupby(a)[b].nunique().max() > 1 and table.groupby(b)[a].nunique().max() > 1]
    if pair:
        x, y = pair[0]
        fig, ax = plt.subplots(figsize=(7, 5.5), constrained_layout=True)
        heatmap(ax, table, x, y, column)
        others = [c for c in varied if c not in (x, y) and table.groupby([x, y])[c].nunique().max() > 1]
        ax.set_title(f"{name}: {LABELS.get(column, column)}" + (f" (best over {', '.join(others)})" if others else ""),
                     fontsize=9)
        written.append(_save(fig, out / "sweep_heatmap.png"))
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    pareto(ax, table)
    ax.set_title(f"{name}: energy vs cycles", fontsize=10)
    written.append(_save(fig, out / "sweep_pareto.png"))
    fig, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    best_levels(ax, table, column, varied)
    ax.set_title(f"{name}: energy by level of the best points by {LABELS.get(column, column)}", fontsize=10)
    written.append(_save(fig, out / "sweep_best_levels.png"))
    return written
