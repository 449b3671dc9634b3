"""Energy of zoo AlexNet and GoogLeNet pruned to published per-layer weight densities, against the
unpruned networks, in the shape of the results table of T.-J. Yang, Y.-H. Chen, V. Sze, "Designing
Energy-Efficient Convolutional Neural Networks using Energy-Aware Pruning", CVPR 2017 (reference table
eap_cvpr2017.csv): non-zero weights, MACs not skipped, energy, and the reductions.

Zoo networks have no trained weights, so the weights are He-random, pruned at random positions to each
layer's density (``sim.synthetic``: exact counts, the network's own values at the kept positions).
Profiles:

- ``deep_compression`` (AlexNet): the per-layer densities of magnitude pruning in S. Han, J. Pool,
  J. Tran, W. Dally, NIPS 2015, Table 4 / S. Han, H. Mao, W. Dally, ICLR 2016 (Deep Compression),
  Table 4: CONV1-5 84%, 38%, 35%, 37%, 37%; FC6-8 9%, 9%, 25%. Transcribed from those tables (not
  re-checked against a stored copy here); as a cross-check, on our AlexNet shapes they keep 6.79M
  weights, the CVPR 2017 table's figure for this model.
- ``uniform_eap_total`` (GoogLeNet): every layer at 2.37 / 6.99 = 33.9%, the CVPR 2017 table's
  energy-aware GoogLeNet total; the per-layer profile is not published, so this row shows only what
  that many weights give when spread evenly, not the paper's pruned network.

Inputs: AlexNet CONV1-5 at the published ImageNet ifmap densities (Chen et al., JSSC 2017), other
layers from the forward pass of seeded random images. Architecture ``eyeriss_energy_tool`` (zero
operands skipped, significance-map DRAM compression), batch 1, default mappings.

    python experiments/prune_alexnet_energy.py            # both networks (about a minute)
    python experiments/prune_alexnet_energy.py --quick    # the last two MAC layers of AlexNet only

Writes into --out: ``summary.csv`` (one row per network x profile, with the paper's figure beside
ours where there is one), ``layers.csv`` (per layer), ``energy_vs_macs.png`` (from summary.csv).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import networks
from pruning.report import write_csv_atomic
from sim.config import load_architecture
from sim.results import layers_table
from sim.simulate import mac_layers, simulate_network
from sim.synthetic import PUBLISHED_INPUT_DENSITY, DataProfile

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "results" / "prune_alexnet_energy"
ARCHITECTURE = "eyeriss_energy_tool"
DEEP_COMPRESSION_ALEXNET = {"conv1": 0.84, "conv2": 0.38, "conv3": 0.35, "conv4": 0.37, "conv5": 0.37,
                            "fc6": 0.09, "fc7": 0.09, "fc8": 0.25}
GOOGLENET_EAP_TOTAL_DENSITY = 2.37 / 6.99
# CVPR 2017 results table (eap_cvpr2017.csv): (network, method) -> nonzero weights (M), non-skipped
# MACs (1e8), normalised energy (1e9)
PAPER = {
    ("alexnet", "unpruned"): (60.95, 3.71, 3.97),
    ("alexnet", "deep_compression"): (6.79, 1.79, 1.85),
    ("alexnet", "energy_aware (paper)"): (5.73, 0.56, 1.06),
    ("googlenet", "unpruned"): (6.99, 7.41, 7.63),
    ("googlenet", "energy_aware (paper)"): (2.37, 2.16, 4.76),
}


def profiles(network: str) -> dict[str, dict[str, float] | float | None]:
    if network == "alexnet":
        return {"unpruned": None, "deep_compression": DEEP_COMPRESSION_ALEXNET}
    return {"unpruned": None, "uniform_eap_total": GOOGLENET_EAP_TOTAL_DENSITY}


def run(names: tuple[str, ...], *, quick: bool, seed: int, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    arch = load_architecture(ARCHITECTURE)
    layer_frames, rows = [], []
    for name in names:
        network = networks.get(name)
        selected = mac_layers(network)[-2:] if quick else None
        for profile, weight_density in profiles(name).items():
            data = DataProfile(input_density=PUBLISHED_INPUT_DENSITY.get(name), weight_density=weight_density,
                               description=profile)
            results = simulate_network(network, arch, seed=seed, data=data, layers=selected, progress=progress,
                                       mapper="default")
            table = layers_table(results, arch)
            table.insert(0, "network", name)
            table.insert(1, "profile", profile)
            layer_frames.append(table)
            # non-zero weights: the engine's weight tensors (density x weights of each simulated layer)
            weights = sum(int(np.prod(network.param_shapes(l)["weight"])) for l in table.layer)
            nonzero = int(round((table.weight_density_achieved.fillna(1.0) * [
                int(np.prod(network.param_shapes(l)["weight"])) for l in table.layer]).sum()))
            rows.append({"network": name, "profile": profile, "weights": weights, "weights_nonzero": nonzero,
                         "macs_dense": int(table.macs_dense.sum()), "macs_performed": int(table.macs_performed.sum()),
                         "energy_total": float(table.energy_total.sum()), "energy_unit": arch.energy_unit})
    summary = pd.DataFrame(rows)
    base = summary[summary.profile == "unpruned"].set_index("network")
    summary["weight_reduction"] = summary.network.map(base.weights_nonzero) / summary.weights_nonzero
    summary["mac_reduction"] = summary.network.map(base.macs_performed) / summary.macs_performed
    summary["energy_reduction"] = summary.network.map(base.energy_total) / summary.energy_total
    paper_rows = []
    for (network, method), (weights_m, macs_1e8, energy_1e9) in PAPER.items():
        unpruned = PAPER[(network, "unpruned")]
        paper_rows.append({"network": network, "profile": method, "paper_weights_nonzero": weights_m * 1e6,
                           "paper_macs_performed": macs_1e8 * 1e8, "paper_energy_total": energy_1e9 * 1e9,
                           "paper_mac_reduction": unpruned[1] / macs_1e8, "paper_energy_reduction": unpruned[2] / energy_1e9})
    paper = pd.DataFrame(paper_rows)
    matching = {"deep_compression": "deep_compression", "unpruned": "unpruned"}
    summary["paper_profile"] = summary.profile.map(matching)
    merged = summary.merge(paper.rename(columns={"profile": "paper_profile"}), on=["network", "paper_profile"], how="left")
    extra = paper[~paper.set_index(["network", "profile"]).index.isin(list(zip(merged.network, merged.paper_profile)))]
    merged = pd.concat([merged.drop(columns="paper_profile"), extra[extra.network.isin(names)]], ignore_index=True)
    return merged, pd.concat(layer_frames, ignore_index=True)


def plot(summary_csv: Path, out_png: Path) -> None:
    """MAC and energy reductions per row of summary.csv: ours as bars, the paper's as black ticks
    (rows only the paper has are drawn hatched)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.read_csv(summary_csv)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    x = np.arange(len(table))
    ours = table.energy_reduction.notna().to_numpy()
    mac = np.where(ours, table.mac_reduction, table.paper_mac_reduction)
    energy = np.where(ours, table.energy_reduction, table.paper_energy_reduction)
    hatch = ["" if o else "//" for o in ours]
    for i in range(len(table)):
        ax.bar(x[i] - 0.2, mac[i], 0.4, color="tab:blue", hatch=hatch[i], label="MAC reduction" if i == 0 else None)
        ax.bar(x[i] + 0.2, energy[i], 0.4, color="tab:orange", hatch=hatch[i], label="energy reduction" if i == 0 else None)
    published = ours & table.paper_energy_reduction.notna().to_numpy()
    ax.scatter(x[published] + 0.2, table.paper_energy_reduction[published], marker="_", s=300, color="k",
               zorder=3, label="paper's energy reduction")
    ax.set_xticks(x, [f"{r.network}\n{r.profile}" + ("" if o else "\n(published)") for r, o in zip(table.itertuples(), ours)],
                  fontsize=7)
    ax.set_ylabel("x lower than unpruned")
    ax.set_title(f"{ARCHITECTURE}, default mappings: MACs fall faster than energy", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--quick", action="store_true", help="AlexNet's last two MAC layers only (figures not comparable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    names = ("alexnet",) if args.quick else ("alexnet", "googlenet")
    summary, layers = run(names, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    write_csv_atomic(layers, args.out / "layers.csv")
    write_csv_atomic(summary, args.out / "summary.csv")
    plot(args.out / "summary.csv", args.out / "energy_vs_macs.png")
    print(f"{', '.join(names)} on {ARCHITECTURE} (engine, batch 1, default mappings); published: CVPR 2017 table")
    if args.quick:
        print("QUICK: AlexNet's last two MAC layers only; the figures are not comparable")
    columns = ["network", "profile", "weights_nonzero", "macs_performed", "energy_total", "weight_reduction",
               "mac_reduction", "energy_reduction", "paper_mac_reduction", "paper_energy_reduction"]
    print(summary[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
    print(f"\nwrote {args.out}/ (summary.csv, layers.csv, energy_vs_macs.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
