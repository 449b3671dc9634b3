"""``eapsim run`` with a ``kind = "systolic"`` hardware config (``sim.cli`` dispatches here).

The subject is a SCALE-Sim topology CSV (``--network FILE.csv``), a zoo network or ONNX file (its
conv and fully-connected layers, batch folded into the GEMM's pixels), or ``--layer``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from sim.errors import UsageError
from sim.systolic import SystolicLayer, gemm_of_loop_dims, layer_counts, network_layers, topology_layers
from sim.systolic_config import SystolicArray
from sim.systolic_report import network_table, write_systolic_run
from sim.topology import is_topology_file, read_topology


def resolve_layers(args: argparse.Namespace) -> tuple[str, list[SystolicLayer]]:
    if args.layer is not None:
        from sim.simulate import parse_layer

        return "layer", [SystolicLayer(name="layer", kind="Conv2D", gemm=gemm_of_loop_dims(parse_layer(args.layer)))]
    if is_topology_file(args.network):
        if args.batch != 1:
            raise UsageError(f"--batch {args.batch}: a topology file's rows are single images; "
                             "write a batch into the rows or drop --batch")
        return Path(args.network).stem, topology_layers(read_topology(args.network))
    import networks

    network = networks.get(args.network)
    return network.name, network_layers(network, batch=args.batch)


def run_systolic(args: argparse.Namespace, hw: SystolicArray) -> int:
    for option, given in (("--mapping", args.mapping), ("--input-density", args.input_density),
                          ("--clustered", args.clustered)):
        if given:
            raise UsageError(f"{option} does not apply to a systolic array ({hw.source_file}): its "
                             "mapping is the dataflow and it counts dense data")
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch}: the batch must be >= 1")
    subject, layers = resolve_layers(args)
    out = Path(args.out) if args.out else (
        Path("results") / "run" / f"{subject}_{hw.name}_b{args.batch}_{args.method}")
    if args.dry_run:
        print(f"architecture: {hw.name} ({hw.source_file}), systolic {hw.rows}x{hw.cols} "
              f"{hw.dataflow}")
        print(f"subject: {subject}, {len(layers)} layers; method {args.method}; output: {out}")
        for layer in layers:
            print(f"  {layer.name}: {layer.kind}, GEMM pixels {layer.gemm.pixels} x window "
                  f"{layer.gemm.window} x filters {layer.gemm.filters}, groups {layer.gemm.groups}")
        return 0
    results = [layer_counts(layer, hw.rows, hw.cols, hw.dataflow, method=args.method)
               for layer in tqdm(layers, desc=f"{subject} on {hw.name}", disable=args.no_progress)]
    table = write_systolic_run(out, layers, results, hw, network=subject, method=args.method,
                               hw_option=str(args.hw), batch=args.batch)
    print(f"{subject} on {hw.name} ({hw.rows}x{hw.cols} {hw.dataflow}, {args.method}); cycles as "
          "SCALE-Sim reports them (no DRAM stalls)\n")
    columns = ["layer", "folds", "cycles_total", "pe_utilization", "sram_reads_ifmap_words",
               "sram_reads_filter_words", "sram_writes_ofmap_words"]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    total = network_table(table, network=subject, hw=hw).iloc[0]
    print(f"\ntotal {int(total.cycles_total):,} cycles, PE utilisation {100 * total.pe_utilization:.1f}%")
    print(f"wrote {out}/ (layers.csv, network.csv, manifest.json, cycles.png)")
    return 0
