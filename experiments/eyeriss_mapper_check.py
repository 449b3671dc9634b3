"""The mapper against the Eyeriss chip's published row-stationary mappings: AlexNet CONV1-5, batch 4,
on ``eyeriss_v1`` (the chip's scratchpads, buffer and 12 x 14 array; RS constraints).

For each layer: the published mapping (JSSC 2017: m, n, e, p, q, r, t; CONV1 with its last, smaller
pass and the chip's filter streaming, CONV2 folded 14 + 13 columns, see ``sim.rowstationary``), the
mapper's energy-optimal mapping and, for contrast, its energy-delay-optimal one. The mapper searches
perfect factorisations with every tile held whole, so it cannot pick the published CONV1 or CONV2. Energy is the closed-form model's (dense data, normalised to a MAC), so
all mappings are priced by the same model; active PEs are the mapping's spatial loops (published:
the chip's). ``energy_vs_published`` = energy / energy of the published (or nearest) mapping.

    python experiments/eyeriss_mapper_check.py             # CONV1-5, a few seconds
    python experiments/eyeriss_mapper_check.py --quick     # CI smoke: CONV3 only

Writes ``mapper_check.csv``, ``mapper_check.png`` (drawn from the CSV) and ``manifest.json`` into
``--out`` (default results/eyeriss_mapper_check).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import networks
from sim import mapper
from sim.config import load_architecture
from sim.energy import access_energy
from sim.mapping import build_nest
from sim.model import closed_form_counts
from sim.rowstationary import PARAMETERS, RowStationaryError, RowStationaryParams, nearest_row_stationary, row_stationary_mapping

from _outputs import write_outputs  # experiments/_outputs.py (scripts run from this directory)

REPO_ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = pd.read_csv(REPO_ROOT / "tests" / "data" / "eyeriss_alexnet_jssc2017.csv")
BATCH = 4


def figures(dims, arch, mapping) -> dict:
    # capacities were checked when the mapping was made (the published ones: with filter streaming)
    counts = closed_form_counts(build_nest(dims, arch, mapping, check_capacity_fit=False), arch)
    table = access_energy(counts, arch)
    words = {level: int(table.count_words[table.level == arch.levels[level].name].sum()) for level in (0, 1)}
    return {"energy": float(table.energy.sum()), "energy_per_mac": float(table.energy.sum()) / counts.macs,
            "active_pes": counts.pes_used, "cycles": counts.cycles_compute, "dram_words": words[0],
            "glb_words": words[1]}


def check(layers: list[str]) -> pd.DataFrame:
    arch = load_architecture("eyeriss_v1")
    network = networks.get("alexnet")
    rows = []
    for layer in layers:
        published = PUBLISHED.set_index("layer").loc[layer]
        params = RowStationaryParams(**{k: int(published[k]) for k in PARAMETERS})
        dims = network.loop_dims(layer.lower(), BATCH)
        base = {"layer": layer, "active_pes_published": int(published.active_pes)}
        try:
            mapping = row_stationary_mapping(dims, arch, **params.as_dict(), layer_name=layer, stream_filters=True)
            rows.append({**base, "mapping": "published", "note": str(params), **figures(dims, arch, mapping)})
        except RowStationaryError as exc:
            choice = nearest_row_stationary(dims, arch, params, layer)
            rows.append({**base, "mapping": "nearest_expressible",
                         "note": f"published {params} not expressible ({exc}); nearest: {choice.params}",
                         **figures(dims, arch, choice.mapping)})
        for objective in ("energy", "edp"):
            mapper.clear_cache()
            result = mapper.map_layer(dims, arch, objective=objective, layer_name=layer)
            rows.append({**base, "mapping": f"mapper_{objective}", "note": result.mapping.source,
                         **figures(dims, arch, result.mapping), "exact": result.exact,
                         "candidates_evaluated": result.candidates_evaluated, "search_s": result.search_s,
                         "loop_nest": " | ".join(line.strip() for line in result.loop_nest().splitlines())})
    table = pd.DataFrame(rows)
    reference = table[table.mapping.isin(["published", "nearest_expressible"])].set_index("layer")
    table["energy_vs_published"] = table.energy / table.layer.map(reference.energy)
    table["cycles_vs_published"] = table.cycles / table.layer.map(reference.cycles)
    table["active_pes_vs_published"] = table.active_pes / table.active_pes_published
    return table


def plot(staging: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.read_csv(staging / "mapper_check.csv")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, column, label in ((axes[0], "energy_per_mac", "energy per MAC (normalised to a MAC)"),
                              (axes[1], "active_pes", "active PEs")):
        pivot = table.pivot(index="layer", columns="mapping", values=column)
        pivot.plot.bar(ax=ax, rot=0)
        if column == "active_pes":
            ax.plot(range(len(pivot)), table.groupby("layer").active_pes_published.first().loc[pivot.index],
                    "k_", markersize=20, label="published (chip)")
            ax.legend(fontsize=8)
        ax.set_ylabel(label)
    fig.suptitle("AlexNet on eyeriss_v1 (batch 4): published RS mapping vs the mapper")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CONV3 only (smoke test)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "eyeriss_mapper_check")
    args = parser.parse_args(argv)
    layers = ["CONV3"] if args.quick else list(PUBLISHED.layer)
    table = check(layers)
    write_outputs(args.out, {"mapper_check": table}, {"mapper_check.png": plot},
                  {"architecture": "eyeriss_v1", "network": "alexnet", "batch": BATCH, "layers": layers})
    shown = table[["layer", "mapping", "energy_per_mac", "energy_vs_published", "active_pes", "active_pes_published",
                   "cycles_vs_published", "dram_words", "glb_words"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for row in table[table.mapping == "mapper_energy"].itertuples():
        print(f"{row.layer}: mapper (energy) / published energy = {row.energy_vs_published:.3f}, "
              f"active PEs {row.active_pes} vs {row.active_pes_published} published")
    print(f"\nwrote {args.out}/ (mapper_check.csv, mapper_check.png, manifest.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
