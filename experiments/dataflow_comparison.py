"""The dataflow comparison of Eyeriss (Chen, Emer, Sze, ISCA 2016) under this simulator's model.

AlexNet's CONV and FC layers on the ``eyeriss_isca16`` setup resized to 256, 512 and 1024 PEs, for
each dataflow (RS, WS, OSA, OSB, OSC, NLR, IS; ``sim.dataflow``) with its storage re-split under
the equal-area rule (``sim.dataflow.equal_area_architecture``: the assumptions are in its
docstring), at batch sizes 1, 16, 64 (CONV) and 16, 64, 256 (FC). Every layer gets its dataflow's
energy-optimal mapping (``sim.mapper``, exact for its space unless the CSV says otherwise).

Outputs (``--out``, default results/dataflow_comparison):

- ``layers.csv``: one row per layer x PE count x batch x dataflow: energy (normalised to a MAC) by
  level (DRAM, buffer, array NoC, RF, ALU) and by data type, DRAM words, active PEs, the mapping's
  search figures;
- ``summary.csv``: one row per layer kind (CONV, FC) x PE count x batch x dataflow: energy per MAC
  by level and by data type, DRAM accesses per MAC, active PEs (mean over layers), MAC-weighted
  PE utilisation, and ``energy_vs_RS`` (this dataflow's energy per MAC / RS's);
- ``dataflow_energy.png`` (energy per MAC by level, grouped bars per dataflow, one bar per PE
  count, batch 16), ``dataflow_data_types.png`` (by data type) and ``dataflow_dram.png`` (DRAM
  accesses per MAC), all drawn from ``summary.csv``; ``manifest.json``.

Published (ISCA16): RS is 1.4x to 2.5x more energy efficient than the other dataflows on the CONV
layers and at least 1.3x on the FC layers (batch 16). The script prints what the model gives.
Known modelling gap: under NLR the PEs hold nothing, so operands go from the buffer straight to the
MACs and the model charges no array (NoC) energy for them (it charges NoC words only between
storage levels); NLR's figures are therefore low by up to 2 per operand word.

A long run keeps every finished layer in ``<out>.partial.csv`` and resumes from it.

    python experiments/dataflow_comparison.py             # the full grid (several minutes)
    python experiments/dataflow_comparison.py --quick     # CI smoke: CONV3 and FC8, 256 PEs, batch 16
    python experiments/dataflow_comparison.py --objective edp --out results/dataflow_comparison_edp
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd
from tqdm import tqdm

import networks
from sim import mapper
from sim.config import load_architecture
from sim.dataflow import NAMES as DATAFLOWS
from sim.dataflow import equal_area_architecture
from sim.energy import access_energy, energy_breakdown

from _outputs import write_outputs  # experiments/_outputs.py (scripts run from this directory)

REPO_ROOT = Path(__file__).resolve().parents[1]
PES = (256, 512, 1024)
BATCHES = {"CONV": (1, 16, 64), "FC": (16, 64, 256)}
LAYERS = {"CONV": ("conv1", "conv2", "conv3", "conv4", "conv5"), "FC": ("fc6", "fc7", "fc8")}
LEVELS = ("dram", "global_buffer", "noc", "register_file", "mac")
DATA_TYPES = ("input_fmaps", "output_fmaps", "weights", "computation")
KEY = ["kind", "pes", "batch", "dataflow", "layer"]


def run_layer(network, base, objective: str, kind: str, pes: int, batch: int, flow: str, layer: str) -> dict:
    arch = equal_area_architecture(base, flow, pes=pes)
    dims = network.loop_dims(layer, batch)
    result = mapper.map_layer(dims, arch, layer_name=layer, objective=objective)
    table = access_energy(result.counts, arch)
    breakdown = energy_breakdown(table)
    dram = arch.levels[0].name
    return {"kind": kind, "pes": pes, "batch": batch, "dataflow": flow, "layer": layer, "macs": dims.macs,
            "rf_words_per_pe": arch.levels[2].capacity_words, "buffer_words": arch.levels[1].capacity_words,
            **breakdown, "dram_words": int(table.count_words[table.level == dram].sum()),
            "active_pes": result.pes_used, "cycles": result.cycles, "mapping_exact": result.exact,
            "mapping_gap": result.gap, "mapping_candidates": result.candidates_evaluated,
            "mapping_search_s": result.search_s}


def summarise(layers: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (kind, pes, batch, flow), group in layers.groupby(["kind", "pes", "batch", "dataflow"], sort=False):
        macs = group.macs.sum()
        row = {"kind": kind, "pes": pes, "batch": batch, "dataflow": flow, "layers": len(group), "macs": macs,
               "energy_per_mac": group.energy_total.sum() / macs}
        row.update({f"energy_per_mac_{k}": group[f"energy_{k}"].sum() / macs for k in LEVELS + DATA_TYPES})
        row.update({"dram_accesses_per_mac": group.dram_words.sum() / macs, "active_pes_mean": group.active_pes.mean(),
                    "pe_utilization_mac_weighted": (group.active_pes * group.macs).sum() / macs / pes,
                    "all_exact": bool(group.mapping_exact.all())})
        rows.append(row)
    summary = pd.DataFrame(rows)
    rs = summary[summary.dataflow == "RS"].set_index(["kind", "pes", "batch"]).energy_per_mac
    summary["energy_vs_RS"] = [r.energy_per_mac / rs.get((r.kind, r.pes, r.batch), float("nan"))
                               for r in summary.itertuples()]
    return summary


def _grouped(staging: Path, png: Path, columns: list[str], labels: list[str], ylabel: str, batch: int = 16) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = pd.read_csv(staging / "summary.csv")
    summary = summary[summary.batch == batch]
    kinds = [k for k in ("CONV", "FC") if k in set(summary.kind)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(7 * len(kinds), 4.5), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, kind in zip(axes[0], kinds):
        part = summary[summary.kind == kind]
        pes_values = sorted(set(part.pes))
        width = 0.8 / len(pes_values)
        flows = [f for f in DATAFLOWS if f in set(part.dataflow)]
        for j, pes in enumerate(pes_values):
            rows = part[part.pes == pes].set_index("dataflow").reindex(flows)
            bottom = [0.0] * len(flows)
            for c, (column, label) in enumerate(zip(columns, labels)):
                values = rows[column].fillna(0).tolist()
                ax.bar([i + (j - (len(pes_values) - 1) / 2) * width for i in range(len(flows))], values, width,
                       bottom=bottom, color=colors[c % 10], edgecolor="white", linewidth=0.3,
                       label=label if j == 0 else None)
                bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_xticks(range(len(flows)), flows)
        ax.set_ylabel(ylabel)
        ax.set_title(f"AlexNet {kind}, batch {batch}; bars: {', '.join(map(str, pes_values))} PEs")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def plot_levels(staging: Path, png: Path) -> None:
    _grouped(staging, png, [f"energy_per_mac_{k}" for k in LEVELS], ["DRAM", "buffer", "array (NoC)", "RF", "ALU"],
             "energy per MAC (normalised to a MAC)")


def plot_data_types(staging: Path, png: Path) -> None:
    _grouped(staging, png, [f"energy_per_mac_{k}" for k in DATA_TYPES], ["ifmaps", "psums/ofmaps", "weights", "ALU"],
             "energy per MAC (normalised to a MAC)")


def plot_dram(staging: Path, png: Path) -> None:
    _grouped(staging, png, ["dram_accesses_per_mac"], ["DRAM accesses"], "DRAM accesses per MAC")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CONV3 and FC8 at 256 PEs, batch 16 (smoke test)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "dataflow_comparison")
    parser.add_argument("--objective", choices=mapper.OBJECTIVES, default="energy",
                        help="what each mapping minimises (default energy; the model has no static energy, so "
                             "energy-optimal mappings may leave PEs idle: edp weighs in the cycles)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    layers_of = {"CONV": ("conv3",), "FC": ("fc8",)} if args.quick else LAYERS
    pes_values = (256,) if args.quick else PES
    batches = {"CONV": (16,), "FC": (16,)} if args.quick else BATCHES
    plan = [(kind, pes, batch, flow, layer) for kind in ("CONV", "FC") for pes in pes_values
            for batch in batches[kind] for flow in DATAFLOWS for layer in layers_of[kind]]
    partial = args.out.parent / f"{args.out.name}.{args.objective}.partial.csv"
    done = pd.read_csv(partial) if partial.is_file() and not args.quick else pd.DataFrame(columns=KEY)
    finished = {tuple(row) for row in done[KEY].itertuples(index=False)}
    network = networks.get("alexnet")
    base = load_architecture("eyeriss_isca16")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = [row for row in done.to_dict("records")]
    for item in tqdm(plan, desc="layers x configurations", disable=args.no_progress):
        if item in finished:
            continue
        row = run_layer(network, base, args.objective, *item)
        rows.append(row)
        if not args.quick:
            pd.DataFrame([row]).to_csv(partial, mode="a", header=not partial.is_file(), index=False)
    layers = pd.DataFrame(rows)
    layers = layers.set_index(KEY).loc[plan].reset_index()  # plan order, even after a resume
    summary = summarise(layers)
    write_outputs(args.out, {"layers": layers, "summary": summary},
                  {"dataflow_energy.png": plot_levels, "dataflow_data_types.png": plot_data_types,
                   "dataflow_dram.png": plot_dram},
                  {"network": "alexnet", "base": "eyeriss_isca16", "pes": pes_values, "batches": batches,
                   "dataflows": DATAFLOWS, "quick": args.quick, "objective": args.objective})
    if partial.is_file() and not args.quick:
        os.remove(partial)
    shown = summary[["kind", "pes", "batch", "dataflow", "energy_per_mac", "dram_accesses_per_mac",
                     "active_pes_mean", "energy_vs_RS", "all_exact"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for kind, published in (("CONV", "1.4x-2.5x"), ("FC", ">= 1.3x")):
        part = summary[(summary.kind == kind) & (summary.batch == 16) & (summary.dataflow != "RS")]
        if len(part):
            print(f"{kind}, batch 16: other dataflows / RS energy per MAC: {part.energy_vs_RS.min():.2f}x to "
                  f"{part.energy_vs_RS.max():.2f}x (published: RS {published} more efficient)")
    print(f"\nwrote {args.out}/ (layers.csv, summary.csv, dataflow_energy.png, dataflow_data_types.png, "
          "dataflow_dram.png, manifest.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
