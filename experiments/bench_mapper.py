"""Benchmark: time to find the energy-optimal mapping of every AlexNet and VGG-16 layer.

For each architecture (eyeriss_v1, eyeriss_isca16; their dataflow, RS) and network, after a warm-up
search that compiles or loads the numba kernels, maps every MAC layer with an empty cache and
prints its search time, the candidates the branch and bound evaluated (and the size of the space),
candidates per second and whether the result is exact, then the totals against the targets
(issue: mapper): <= 1 s per AlexNet layer, <= 5 s for all of AlexNet, <= 20 s for all of VGG-16,
as measured / target (below 1 meets it). The machine's load average is printed beside them: the
times are wall-clock on whatever share of the cores the run gets.

    python experiments/bench_mapper.py                 # AlexNet and VGG-16, batch 1, both presets
    python experiments/bench_mapper.py --batch 4       # e.g. the Eyeriss chip's AlexNet batch
    python experiments/bench_mapper.py --quick         # CI smoke: LeNet-5 on eyeriss_v1, seconds
    python experiments/bench_mapper.py --out DIR       # also write DIR/bench_mapper.csv
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

import networks
from sim import mapper
from sim.config import load_architecture
from sim.simulate import mac_layers

from _outputs import write_outputs  # experiments/_outputs.py (scripts run from this directory)

TARGETS_S = {"alexnet_layer": 1.0, "alexnet": 5.0, "vgg16": 20.0}


def bench(network_name: str, hw: str, batch: int) -> pd.DataFrame:
    arch = load_architecture(hw)
    network = networks.get(network_name)
    rows = []
    for name in mac_layers(network):
        dims = network.loop_dims(name, batch)
        mapper.clear_cache()
        start = time.perf_counter()
        result = mapper.map_layer(dims, arch, layer_name=name)
        seconds = time.perf_counter() - start
        rows.append({"hw": hw, "network": network_name, "batch": batch, "layer": name, "search_s": seconds,
                     "candidates_evaluated": result.candidates_evaluated, "space_size": result.space_size,
                     "candidates_per_s": result.candidates_evaluated / seconds, "exact": result.exact,
                     "gap": result.gap, "energy": result.energy, "pe_utilization": result.utilization})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="LeNet-5 on eyeriss_v1 only (smoke test)")
    parser.add_argument("--out", type=Path, help="also write bench_mapper.csv (and a manifest) here")
    args = parser.parse_args(argv)
    plan = [("lenet5", "eyeriss_v1")] if args.quick else [
        (net, hw) for hw in ("eyeriss_v1", "eyeriss_isca16") for net in ("alexnet", "vgg16")]
    warm = networks.get("lenet5")
    for hw in {hw for _, hw in plan}:  # compile or load the cached kernels before timing
        mapper.map_layer(warm.loop_dims("conv1", 1), load_architecture(hw))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"mapper benchmark, batch {args.batch}; {os.cpu_count()} cores visible, load average {load:.1f}\n")
    frames = []
    for network_name, hw in plan:
        table = bench(network_name, hw, args.batch)
        frames.append(table)
        print(f"{network_name} on {hw}")
        print(table[["layer", "search_s", "candidates_evaluated", "space_size", "candidates_per_s", "exact"]]
              .to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        total = table.search_s.sum()
        line = f"  total {total:.2f} s, {table.candidates_evaluated.sum() / total:.3g} candidates/s, " \
               f"all exact: {bool(table.exact.all())}"
        if network_name in TARGETS_S:
            line += f"; total / target {total:.2f} / {TARGETS_S[network_name]:.0f} s = {total / TARGETS_S[network_name]:.2f}"
        if network_name == "alexnet":
            slowest = table.search_s.max()
            line += f"; slowest layer / target {slowest:.2f} / 1 s = {slowest / TARGETS_S['alexnet_layer']:.2f}"
        print(line + "\n")
    print(f"load average now {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
    if args.out:
        write_outputs(args.out, {"bench_mapper": pd.concat(frames, ignore_index=True)}, {},
                      {"batch": args.batch, "quick": args.quick, "targets_s": TARGETS_S})
        print(f"wrote {args.out}/bench_mapper.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
