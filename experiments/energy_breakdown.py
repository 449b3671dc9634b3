"""Where the energy goes: AlexNet, GoogLeNet and SqueezeNet v1.0 as the energy-aware-pruning energy
tool sees them, beside the figures of T.-J. Yang, Y.-H. Chen, V. Sze, "Designing Energy-Efficient
Convolutional Neural Networks using Energy-Aware Pruning", CVPR 2017 (and its poster):

- AlexNet: the CONV layers' share of the energy (paper: about 72-73%);
- GoogLeNet: the energy by data type (paper: input fmaps 25%, output fmaps 43%, weights 22%,
  computation 10%);
- SqueezeNet v1.0: its energy relative to AlexNet's (paper: about 1.3x);
- as anchors, the unpruned networks' totals of the paper's results table (normalised energy and
  MACs not skipped: AlexNet 3.97e9 and 3.71e8, GoogLeNet 7.63e9 and 7.41e8).

Setup: the ``eyeriss_energy_tool`` preset (a MAC with a zero operand is skipped, DRAM traffic is
compressed with a significance map), the counting engine, batch 1, every MAC layer, each with its
default mapping (``sim/default_mapping.py``: sound, NOT optimised; a mapper comes later, and the
paper's tool uses optimised mappings). Data: the zoo networks' He-random weights (dense, unpruned as
in the paper's baseline) and

- AlexNet: CONV1-5 inputs synthetic at the published ifmap zero fractions on ImageNet (Chen et al.,
  JSSC 2017; ``sim.synthetic``, zeros uniformly placed); FC inputs from the forward pass;
- GoogLeNet, SqueezeNet: the forward pass's own activations on seeded random images (about half of
  each ReLU output is zero; no published per-layer profile); the achieved densities are in
  ``layers.csv``.

    python experiments/energy_breakdown.py            # the three networks, about 30 s
    python experiments/energy_breakdown.py --quick    # two layers of each network (smoke test;
                                                      # its figures are not comparable)

Writes into ``--out``: ``layers.csv`` (one row per network x MAC layer, the columns of a run's
layers.csv), ``networks.csv`` (totals per network), ``comparison.csv`` (one row per compared figure:
simulated, published, ratio), ``comparison.png`` (drawn from comparison.csv) and ``manifest.json``.
Gaps to the paper are reported, never tuned away.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import networks
from sim.config import load_architecture
from sim.results import BREAKDOWN_BY_DATA_TYPE, BREAKDOWN_BY_LEVEL, layers_table
from sim.simulate import mac_layers, simulate_network
from sim.synthetic import REAL_DATA, published_profile

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "results" / "energy_breakdown"
ARCHITECTURE = "eyeriss_energy_tool"
BATCH = 1
NETWORKS = ("alexnet", "googlenet", "squeezenet1_0")
QUICK_LAYERS = 2  # --quick: the last two MAC layers of each network

PAPER_SOURCE = "Yang, Chen, Sze, CVPR 2017 (energy-aware pruning), and its poster"
# (figure, network, published value, unit, what it is); totals: the paper's results table for the
# unpruned networks (reference table eap_cvpr2017.csv), energy normalised to one MAC
PAPER = [
    ("conv_share", "alexnet", 0.725, "fraction", "CONV layers' share of the energy (paper: about 72-73%)"),
    ("share_input_fmaps", "googlenet", 0.25, "fraction", "energy share of input feature maps"),
    ("share_output_fmaps", "googlenet", 0.43, "fraction", "energy share of output feature maps (incl. psums)"),
    ("share_weights", "googlenet", 0.22, "fraction", "energy share of weights"),
    ("share_computation", "googlenet", 0.10, "fraction", "energy share of computation (MACs)"),
    ("energy_vs_alexnet", "squeezenet1_0", 1.3, "x AlexNet", "energy relative to AlexNet's (paper: about 1.3x)"),
    ("energy_total", "alexnet", 3.97, "1e9 MAC energies", "energy of the unpruned network"),
    ("energy_total", "googlenet", 7.63, "1e9 MAC energies", "energy of the unpruned network"),
    ("macs_performed", "alexnet", 3.71, "1e8 MACs", "MACs not skipped (zero operands)"),
    ("macs_performed", "googlenet", 7.41, "1e8 MACs", "MACs not skipped (zero operands)"),
]


def data_profile(network: str):
    return published_profile("alexnet") if network == "alexnet" else REAL_DATA


def data_note(network: str) -> str:
    if network == "alexnet":
        return "CONV1-5 inputs at the published ImageNet zero fractions (JSSC17), FC inputs from the forward pass"
    return "forward-pass activations of random weights on random images (ReLU zeros)"


def simulate(names: tuple[str, ...], *, quick: bool, seed: int, progress: bool) -> pd.DataFrame:
    """layers.csv rows of every network (a ``network`` column in front)."""
    arch = load_architecture(ARCHITECTURE)
    frames = []
    for name in names:
        network = networks.get(name)
        layers = mac_layers(network)[-QUICK_LAYERS:] if quick else None
        results = simulate_network(network, arch, batch=BATCH, seed=seed, data=data_profile(name),
                                   layers=layers, progress=progress, mapper="default")
        table = layers_table(results, arch)
        table.insert(0, "network", name)
        table.insert(1, "data", data_note(name))
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def network_totals(layers: pd.DataFrame) -> pd.DataFrame:
    sums = ["macs_dense", "macs_performed", "energy_total", *BREAKDOWN_BY_DATA_TYPE, *BREAKDOWN_BY_LEVEL]
    totals = layers.groupby("network", sort=False)[sums].sum()
    conv = layers[layers.kind == "Conv2D"].groupby("network", sort=False).energy_total.sum()
    totals["energy_conv"] = conv.reindex(totals.index).fillna(0.0)
    totals["layers_simulated"] = layers.groupby("network", sort=False).size()
    totals["mean_input_density_achieved"] = layers.groupby("network", sort=False).input_density_achieved.mean()
    totals["energy_unit"] = layers.groupby("network", sort=False).energy_unit.first()
    return totals.reset_index()


def comparison(totals: pd.DataFrame) -> pd.DataFrame:
    """One row per paper figure with our value beside it (NaN when a network was not simulated)."""
    t = totals.set_index("network")
    ours = {}
    if "alexnet" in t.index:
        ours[("conv_share", "alexnet")] = t.loc["alexnet", "energy_conv"] / t.loc["alexnet", "energy_total"]
    if "googlenet" in t.index:
        for kind in ("input_fmaps", "output_fmaps", "weights", "computation"):
            ours[(f"share_{kind}", "googlenet")] = t.loc["googlenet", f"energy_{kind}"] / t.loc["googlenet", "energy_total"]
    for name in ("alexnet", "googlenet"):
        if name in t.index:
            ours[("energy_total", name)] = t.loc[name, "energy_total"] / 1e9
            ours[("macs_performed", name)] = t.loc[name, "macs_performed"] / 1e8
    if {"alexnet", "squeezenet1_0"} <= set(t.index):
        ours[("energy_vs_alexnet", "squeezenet1_0")] = t.loc["squeezenet1_0", "energy_total"] / t.loc["alexnet", "energy_total"]
    rows = []
    for figure, network, published, unit, meaning in PAPER:
        value = ours.get((figure, network), float("nan"))
        rows.append({"figure": figure, "network": network, "simulated": value, "published": published,
                     "ratio": value / published, "unit": unit, "meaning": meaning,
                     "published_source": PAPER_SOURCE})
    return pd.DataFrame(rows)


def plot(csv_path: Path, out: Path, *, quick: bool) -> None:
    """Simulated beside published, one pair of bars per figure, drawn from comparison.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.read_csv(csv_path)
    units = list(dict.fromkeys(table.unit))
    widths = [int((table.unit == unit).sum()) for unit in units]
    fig, axes = plt.subplots(1, len(units), figsize=(14, 4), gridspec_kw={"width_ratios": widths})
    for ax, unit in zip(axes, units):
        rows = table[table.unit == unit]
        x = np.arange(len(rows))
        ax.bar(x - 0.2, rows.simulated.fillna(0), 0.4, label="simulated (default mappings)")
        ax.bar(x + 0.2, rows.published, 0.4, label="published (CVPR17)")
        ax.set_xticks(x, [f"{r.network}\n{r.figure}" for r in rows.itertuples()], fontsize=6)
        ax.set_ylabel(unit, fontsize=8)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{ARCHITECTURE}, engine, batch {BATCH}: simulated vs Yang, Chen, Sze, CVPR 2017"
                 + (" (QUICK: a few layers only, not comparable)" if quick else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def manifest(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    arch = load_architecture(ARCHITECTURE)
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                  text=True, check=False).stdout.strip() or None
    except OSError:
        revision = None
    config = Path(arch.source_file)
    return {
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "git_revision": revision,
        "architecture": arch.name,
        "architecture_sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
        "networks": list(names), "batch": BATCH, "seed": args.seed, "quick": args.quick,
        "method": "engine", "mappings": "default (sim/default_mapping.py), not optimised",
        "data": {name: (data_profile(name).description or data_note(name)) for name in names},
        "published_source": PAPER_SOURCE,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: the last {QUICK_LAYERS} MAC layers of each network (figures not comparable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, images and synthetic inputs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    layers = simulate(NETWORKS, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    totals = network_totals(layers)
    table = comparison(totals)
    args.out.mkdir(parents=True, exist_ok=True)
    layers.to_csv(args.out / "layers.csv", index=False)
    totals.to_csv(args.out / "networks.csv", index=False)
    csv_path = args.out / "comparison.csv"
    table.to_csv(csv_path, index=False)
    plot(csv_path, args.out / "comparison.png", quick=args.quick)
    (args.out / "manifest.json").write_text(json.dumps(manifest(args, NETWORKS), indent=2) + "\n")

    print(f"{', '.join(NETWORKS)} on {ARCHITECTURE} (engine, batch {BATCH}) vs {PAPER_SOURCE}")
    print("mappings: the default mapping of every layer (sim/default_mapping.py), NOT optimised: a mapper "
          "comes later, and the paper's tool uses optimised mappings")
    if args.quick:
        print(f"QUICK: only the last {QUICK_LAYERS} MAC layers of each network; the figures are not comparable")
    for name in NETWORKS:
        row = totals.set_index("network").loc[name]
        print(f"data, {name}: {data_note(name)}; mean achieved input density {row.mean_input_density_achieved:.2f}")
    print()
    shown = totals[["network", "layers_simulated", "macs_dense", "macs_performed", "energy_total", "energy_conv",
                    *BREAKDOWN_BY_DATA_TYPE, "energy_dram"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print()
    print(table[["network", "figure", "unit", "simulated", "published", "ratio"]].to_string(
        index=False, float_format=lambda v: f"{v:.3g}", na_rep="-"))
    t = totals.set_index("network")
    if "alexnet" in t.index and not args.quick:
        fc = layers[(layers.network == "alexnet") & (layers.kind == "FullyConnected")]
        print(f"\nAlexNet's FC layers: {fc.energy_total.sum():.3g} of {t.loc['alexnet', 'energy_total']:.3g} "
              f"({t.loc['alexnet', 'energy_unit']} units), {fc.energy_weights.sum() / fc.energy_total.sum():.0%} "
              "of it weights: at batch 1 every FC weight crosses DRAM once per image")
    if {"alexnet", "squeezenet1_0"} <= set(t.index) and not args.quick:
        print(f"CONV layers only: SqueezeNet / AlexNet = "
              f"{t.loc['squeezenet1_0', 'energy_conv'] / t.loc['alexnet', 'energy_conv']:.2f}")
    print(f"\nwrote {args.out}/ (layers.csv, networks.csv, comparison.csv, comparison.png, manifest.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
