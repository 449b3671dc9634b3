"""Benchmark: the counting engine against the closed-form model on a whole network.

Prints, per MAC layer and in total, the engine's wall time and MAC events per second (after a
warm-up run that compiles the kernel), next to the closed-form model's time for the same layers,
and the ratio. Targets (issue: simulator core): dense AlexNet, batch 1, on eyeriss_v1 in <= 3 s at
>= 300 M MAC events/s; closed form < 10 ms per layer.

    python experiments/bench_engine.py            # AlexNet on eyeriss_v1
    python experiments/bench_engine.py --quick    # LeNet-5, a few seconds (CI smoke test)
    python experiments/bench_engine.py --sparse   # also: the same layers with zero skipping and
                                                  # compression (eyeriss_energy_tool options) on
                                                  # tensors with half their values zero

Without --sparse the architecture's sparsity options are switched off (dense hardware), so the
figures measure the dense path. Target (issue 6): the sparse run within 1.5x of the dense time.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np

import networks
from sim.config import load_architecture
from sim.default_mapping import default_mapping
from sim.engine import run_engine
from sim.mapping import build_nest
from sim.model import clear_caches, closed_form_counts
from sim.simulate import mac_layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="alexnet")
    parser.add_argument("--hw", default="eyeriss_v1")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="closed-form timings are the best of this many")
    parser.add_argument("--quick", action="store_true", help="LeNet-5, for a smoke test")
    parser.add_argument("--sparse", action="store_true",
                        help="also time zero skipping + compression on half-zero tensors")
    args = parser.parse_args()
    network_name = "lenet5" if args.quick else args.network
    arch = dataclasses.replace(load_architecture(args.hw), zero_handling={"weights": "none", "inputs": "none"},
                               dram_compression={"weights": "none", "inputs": "none", "outputs": "none"})
    network = networks.get(network_name)
    rng = np.random.default_rng(0)
    layers = []
    for name in mac_layers(network):
        dims = network.loop_dims(name, args.batch)
        nest = build_nest(dims, arch, default_mapping(dims, arch, layer_name=name), layer_name=name)
        w = rng.standard_normal(dims.G * dims.M * dims.C * dims.R * dims.S, dtype=np.float32)
        x = rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W, dtype=np.float32)
        layers.append((name, nest, w, x))

    run_engine(*layers[-1][1:2], arch, *layers[-1][2:])  # warm-up: compile or load the cached kernel
    print(f"{network_name} batch {args.batch} on {arch.name}, {os.cpu_count()} cores visible; mappings: default\n")
    print(f"{'layer':>10} {'MACs':>13} {'engine_s':>9} {'MMAC/s':>8} {'model_ms':>9} {'engine/model':>13}")
    total_macs = total_engine = total_model = 0.0
    for name, nest, w, x in layers:
        start = time.perf_counter()
        engine = run_engine(nest, arch, w, x).counts
        engine_s = time.perf_counter() - start
        model_s = float("inf")
        for _ in range(args.repeats):
            clear_caches()  # time the model cold, as a new layer sees it
            start = time.perf_counter()
            model = closed_form_counts(nest, arch, cache=False)
            model_s = min(model_s, time.perf_counter() - start)
        if engine.differences(model):
            raise SystemExit(f"{name}: engine and closed form disagree: {engine.differences(model)[:3]}")
        total_macs += engine.macs
        total_engine += engine_s
        total_model += model_s
        print(f"{name:>10} {engine.macs:>13,} {engine_s:>9.3f} {engine.macs / engine_s / 1e6:>8.0f} "
              f"{model_s * 1e3:>9.2f} {engine_s / model_s:>13.0f}")
    print(f"{'total':>10} {int(total_macs):>13,} {total_engine:>9.3f} {total_macs / total_engine / 1e6:>8.0f} "
          f"{total_model * 1e3:>9.2f} {total_engine / total_model:>13.0f}")
    print(f"\nengine: {total_engine:.2f} s for the network ({total_macs / total_engine / 1e6:.0f} M MAC events/s on one core); "
          f"closed form: {1e3 * total_model / len(layers):.2f} ms per layer on average")
    if args.sparse:
        bench_sparse(arch, layers, total_engine)


def bench_sparse(dense_arch, layers, dense_s: float) -> None:
    """The same layers with skipping on both operands and significance-map compression of every
    data type (the eyeriss_energy_tool options), on copies of the tensors with half their values
    zeroed, against the dense run; the dense counters must not change."""
    sparse_arch = dataclasses.replace(
        dense_arch, zero_handling={"weights": "skip", "inputs": "skip"},
        dram_compression={d: "significance_map" for d in ("weights", "inputs", "outputs")})
    rng = np.random.default_rng(1)
    print(f"\nsparse: zero_handling {sparse_arch.zero_handling}, compression significance_map, 50% zeros")
    print(f"{'layer':>10} {'engine_s':>9} {'MMAC/s':>8}")
    total_macs = total_s = 0.0
    for name, nest, w, x in layers:
        w = np.where(rng.random(w.size) < 0.5, 0, w).astype(np.float32)
        x = np.where(rng.random(x.size) < 0.5, 0, x).astype(np.float32)
        start = time.perf_counter()
        sparse = run_engine(nest, sparse_arch, w, x).counts
        seconds = time.perf_counter() - start
        dense = run_engine(nest, dense_arch, w, x).counts
        if sparse.differences(dense) and [d for d in sparse.differences(dense) if not d.startswith("cycles")]:
            raise SystemExit(f"{name}: sparse options changed dense counters: {sparse.differences(dense)[:3]}")
        total_macs += sparse.macs
        total_s += seconds
        print(f"{name:>10} {seconds:>9.3f} {sparse.macs / seconds / 1e6:>8.0f}")
    print(f"{'total':>10} {total_s:>9.3f} {total_macs / total_s / 1e6:>8.0f}")
    print(f"\nsparse / dense engine time: {total_s / dense_s:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
