"""Outputs of a systolic-array run: ``layers.csv``, ``network.csv``, ``manifest.json``, ``cycles.png``.

``layers.csv`` has one row per layer:

- ``layer, kind`` and the GEMM: ``gemm_pixels`` (Np), ``gemm_window`` (Nw), ``gemm_filters`` (M),
  ``groups``; the array: ``array_rows, array_cols, dataflow``; ``folds``;
- ``cycles_total``: SCALE-Sim's "Total Cycles" (the last cycle's number, cycles counted from 0, no
  DRAM stalls); ``schedule_cycles`` = ``cycles_total + 1``; ``latency_s`` at the config's clock;
- ``macs_dense``; ``pe_utilization`` (MACs / (PEs x schedule cycles)); ``mapping_efficiency`` (mean
  over folds of the fraction of PEs a fold uses, SCALE-Sim's "Mapping Efficiency");
- ``sram_reads_ifmap_words``, ``sram_reads_filter_words``, ``sram_writes_ofmap_words`` (accesses at
  the array edges) and ``scalesim_sram_writes_ofmap_words`` (the figure SCALE-Sim reports, which for
  OS adds rows + cols per fold);
- ``method`` (engine: cycle by cycle; model: closed form), ``simulation_s``.

A run directory is written whole or not at all (written aside, then renamed into place).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sim.results import staged_directory
from sim.systolic import SystolicLayer, SystolicResult
from sim.systolic_config import SystolicArray

SUM_COLUMNS = ("macs_dense", "folds", "cycles_total", "schedule_cycles", "latency_s",
               "sram_reads_ifmap_words", "sram_reads_filter_words", "sram_writes_ofmap_words",
               "scalesim_sram_writes_ofmap_words", "simulation_s")


def layers_table(layers: list[SystolicLayer], results: list[SystolicResult], hw: SystolicArray,
                 *, method: str) -> pd.DataFrame:
    rows = []
    for layer, result in zip(layers, results, strict=True):
        rows.append({
            "layer": layer.name, "kind": layer.kind,
            "gemm_pixels": layer.gemm.pixels, "gemm_window": layer.gemm.window,
            "gemm_filters": layer.gemm.filters, "groups": layer.gemm.groups,
            "array_rows": hw.rows, "array_cols": hw.cols, "dataflow": hw.dataflow,
            "folds": result.folds, "cycles_total": result.cycles_total,
            "schedule_cycles": result.schedule_cycles,
            "latency_s": result.schedule_cycles / (hw.clock_mhz * 1e6) if hw.clock_mhz else float("nan"),
            "macs_dense": result.macs, "pe_utilization": result.pe_utilization,
            "mapping_efficiency": result.mapping_efficiency,
            "sram_reads_ifmap_words": result.ifmap_sram_reads,
            "sram_reads_filter_words": result.filter_sram_reads,
            "sram_writes_ofmap_words": result.ofmap_sram_writes,
            "scalesim_sram_writes_ofmap_words": result.scalesim_ofmap_sram_writes,
            "method": method, "simulation_s": result.simulation_s,
        })
    return pd.DataFrame(rows)


def network_table(layers: pd.DataFrame, *, network: str, hw: SystolicArray) -> pd.DataFrame:
    row = {"network": network, "architecture": hw.name, "layers_simulated": len(layers)}
    row.update({column: layers[column].sum() for column in SUM_COLUMNS})
    row["pe_utilization"] = row["macs_dense"] / (hw.pes * row["schedule_cycles"])
    return pd.DataFrame([row])


def plot_cycles(layers_csv: str | Path, out_png: str | Path, *, title: str = "") -> Path:
    """Cycles per layer (bars) and PE utilisation (line), drawn from ``layers.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = pd.read_csv(layers_csv)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.4 * len(layers) + 3), 4), constrained_layout=True)
    ax.bar(layers["layer"], layers["cycles_total"], color="#4C72B0")
    ax.set_ylabel("cycles (SCALE-Sim convention)")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    util = ax.twinx()
    util.plot(layers["layer"], 100 * layers["pe_utilization"], color="#DD8452", marker="o")
    util.set_ylabel("PE utilisation (%)", color="#DD8452")
    util.set_ylim(0, 105)
    ax.set_title(title)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)


def manifest(hw: SystolicArray, **inputs) -> dict:
    from sim.results import provenance

    return {**provenance(inputs, hw),
            "timing_model": "SCALE-Sim v3 systolic schedule (sim/systolic.py), no DRAM stalls"}


def write_systolic_run(out_dir: str | Path, layers: list[SystolicLayer], results: list[SystolicResult],
                       hw: SystolicArray, *, network: str, method: str, **inputs) -> pd.DataFrame:
    """Write every output file of a run into ``out_dir`` (replacing a previous run there)."""
    out_dir = Path(out_dir)
    with staged_directory(out_dir) as staging:
        table = layers_table(layers, results, hw, method=method)
        table.to_csv(staging / "layers.csv", index=False)
        network_table(table, network=network, hw=hw).to_csv(staging / "network.csv", index=False)
        (staging / "manifest.json").write_text(json.dumps(
            manifest(hw, network=network, method=method, **inputs), indent=2, default=str))
        plot_cycles(staging / "layers.csv", staging / "cycles.png", title=f"{network} on {hw.name}")
    return table
