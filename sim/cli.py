"""The ``eapsim`` command line. Errors from the library become one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

import networks
from networks.errors import NetworkError
from sim.arch import Architecture
from sim.arch import DATAFLOWS
from sim.errors import ConfigError, UsageError
from sim.mapping import MappingError

MAPPERS = ("search", "default")  # as sim.simulate.MAPPERS (not imported here: the CLI starts fast)
DEFAULT_NETWORK = "alexnet"
DEFAULT_HW = "eyeriss_v1"


def zoo_table() -> pd.DataFrame:
    """Per network: input shape, layers, weights and dense MACs per image (conv and FC split)."""
    rows = []
    for name in networks.available():
        network = networks.get(name)
        summary = network.summary()
        conv = summary[summary.kind == "Conv2D"]
        fc = summary[summary.kind == "FullyConnected"]
        rows.append(
            {
                "network": name,
                "input_shape": "x".join(map(str, network.input_shape)),
                "mac_layers": len(conv) + len(fc),
                "weights_M": summary.weights.sum() / 1e6,
                "conv_weights_M": conv.weights.sum() / 1e6,
                "fc_weights_M": fc.weights.sum() / 1e6,
                "macs_G": summary.macs_dense.sum() / 1e9,
                "conv_macs_G": conv.macs_dense.sum() / 1e9,
                "fc_macs_G": fc.macs_dense.sum() / 1e9,
            }
        )
    return pd.DataFrame(rows)


def _print_table(table: pd.DataFrame) -> None:
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _cmd_zoo(args: argparse.Namespace) -> int:
    _print_table(networks.get(args.network).summary() if args.network else zoo_table())
    return 0


def _default_out(args: argparse.Namespace, subject: str, arch_name: str) -> Path:
    return Path("results") / "run" / f"{subject}_{arch_name}_b{args.batch}_{args.method}"


def _run(args: argparse.Namespace) -> int:
    from sim.config import load_hardware
    from sim.mapping import load_mapping
    from sim.results import layers_table, network_table, write_run
    from sim.simulate import parse_layer, simulate_layer, simulate_network
    from sim.synthetic import profile_from_option
    from sim.topology import is_topology_file

    arch = load_hardware(args.hw)
    if not isinstance(arch, Architecture):  # a systolic array: its own run (sim/systolic_cli.py)
        from sim.systolic_cli import run_systolic

        return run_systolic(args, arch)
    if args.layer is None and is_topology_file(args.network):
        raise UsageError(f"--network {args.network}: a SCALE-Sim topology file runs on a systolic "
                         "array; give --hw systolic_32x32_os (or another systolic preset)")
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch}: the batch must be >= 1")
    mapping = load_mapping(args.mapping, arch) if args.mapping else None
    if mapping is not None and args.layer is None:
        raise UsageError("--mapping applies to one layer: give --layer too (networks use the default mapping)")
    if args.layer is not None:
        if args.input_density is not None or args.clustered:
            raise UsageError("--input-density and --clustered apply to networks, not to --layer")
        dims = parse_layer(args.layer)
        subject = "layer"
    else:
        network = networks.get(args.network)
        subject = network.name  # for an ONNX file, its stem: outputs stay under results/
        data = profile_from_option(args.input_density, network.name, clustered=args.clustered)
        if data.synthetic and args.method != "engine":
            raise UsageError("--input-density needs --method engine: the closed-form model counts dense data")
    out = Path(args.out) if args.out else _default_out(args, subject, arch.name)
    if args.dry_run:
        print(f"architecture: {arch.name} ({arch.source_file}), counting {arch.counting}, {arch.mac_units} PEs")
        print(f"subject: {subject}{'' if args.layer is None else ' ' + str(dims)}; batch {args.batch}; method {args.method}")
        policy = args.mapping or (f"search ({args.dataflow or arch.dataflow or 'RS'}, {args.objective})" if args.mapper == "search"
                                  else "default (sim/default_mapping.py)")
        print(f"mapping: {policy}; output: {out}")
        if args.layer is None and data.synthetic:
            print(f"data: {data.description}{'; zeros clustered' if data.clustered else ''}")
        return 0
    if args.layer is not None:
        results = [simulate_layer(dims, arch, layer="layer", mapping=mapping, method=args.method,
                                  rng=__import__("numpy").random.default_rng(args.seed), mapper=args.mapper,
                                  dataflow=args.dataflow, objective=args.objective)]
    else:
        results = simulate_network(network, arch, batch=args.batch, method=args.method, seed=args.seed,
                                   data=data, progress=not args.no_progress, mapper=args.mapper,
                                   dataflow=args.dataflow, objective=args.objective)
    write_run(out, results, arch, network=subject, batch=args.batch, method=args.method, seed=args.seed,
              hw=str(args.hw), mapping=args.mapping, input_density=args.input_density, clustered=args.clustered,
              mapper="fixed" if args.mapping else args.mapper,
              objective=None if args.mapping or args.mapper != "search" else args.objective,
              dataflow=None if args.mapping or args.mapper != "search" else (args.dataflow or arch.dataflow or "RS"))
    layers = layers_table(results, arch)
    unit = "normalised to one MAC" if arch.energy_unit == "MAC" else arch.energy_unit
    columns = ["layer", "macs_dense", "cycles_total", "pe_utilization", "energy_total",
               "energy_input_fmaps", "energy_output_fmaps", "energy_weights", "energy_computation"]
    print(f"{subject} on {arch.name} (batch {args.batch}, {args.method}); energy {unit}")
    if args.layer is None and data.synthetic:
        print(f"data: {data.description}{'; zeros clustered along W' if data.clustered else ''} "
              "(layers.csv: input_density_requested / _achieved)")
    print()
    _print_table(layers[columns])
    total = network_table(layers, network=subject, arch=arch, batch=args.batch).iloc[0]
    print(f"\ntotal energy {total.energy_total:.4g} ({unit}), {total.energy_per_mac:.3g} per MAC; "
          f"by data type: " + ", ".join(
              f"{k} {100 * total[f'energy_{k}'] / total.energy_total:.1f}%"
              for k in ("input_fmaps", "output_fmaps", "weights", "computation")))
    print("by level: " + ", ".join(
        f"{k} {100 * total[f'energy_{k}'] / total.energy_total:.1f}%"
        for k in ("dram", "global_buffer", "noc", "register_file", "mac")))
    print(f"\nwrote {out}/ (layers.csv, access_counts.csv, network.csv, manifest.json, energy_breakdown.png)")
    return 0


def _add_run_options(parser: argparse.ArgumentParser, *, network_default: str = DEFAULT_NETWORK) -> None:
    parser.add_argument("--network", default=network_default, help=f"zoo network (default {network_default}); one of: {', '.join(networks.available())}; "
                        "an ONNX file; or, with a systolic --hw, a SCALE-Sim topology CSV")
    parser.add_argument("--hw", default=DEFAULT_HW, help=f"hardware config: a TOML path or a preset name (default {DEFAULT_HW})")
    parser.add_argument("--layer", help='one layer instead of a network, e.g. "N=1,C=128,M=256,P=56,Q=56,R=3,S=3,stride=1" (M, C per group)')
    parser.add_argument("--mapping", help="a fixed mapping TOML file for --layer (default: chosen by --mapper)")
    parser.add_argument("--mapper", choices=MAPPERS, default="search",
                        help="how layers without a fixed mapping are mapped: search (default: the energy-optimal "
                             "mapping under the dataflow, sim/mapper.py) or default (sim/default_mapping.py: fast, "
                             "not optimised)")
    parser.add_argument("--dataflow", choices=DATAFLOWS,
                        help="dataflow the search obeys (default: the hardware config's 'dataflow', else RS)")
    parser.add_argument("--objective", choices=("energy", "cycles", "edp"), default="energy",
                        help="what the search minimises (default energy; edp = energy x cycles)")
    parser.add_argument("--batch", type=int, default=1, help="images per batch, N (default 1)")
    parser.add_argument("--method", choices=("engine", "model"), default="engine",
                        help="engine: execute the loop nest on real tensors (ground truth); model: closed form (fast)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights and input images")
    parser.add_argument("--input-density", metavar="{published,FLOAT}",
                        help="engine data: every MAC layer's input as a synthetic tensor with this density "
                             "(fraction of non-zero values, 0-1), or 'published' for the network's published "
                             "per-layer profile (AlexNet CONV1-5: Chen et al., JSSC 2017); default: the forward "
                             "pass's own activations")
    parser.add_argument("--clustered", action="store_true",
                        help="with --input-density: place the zeros in runs along W (sim/synthetic.py) "
                             "instead of uniformly at random")
    parser.add_argument("--out", help="output directory (default results/run/<subject>_<hw>_b<batch>_<method>)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved inputs and stop")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _sweep(args: argparse.Namespace) -> int:
    from sim.sweep import OBJECTIVES, best_points, load_sweep, run_sweep

    sweep = load_sweep(args.sweep)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: needs at least 1")
    method = "engine" if args.engine else None
    out = Path(args.out) if args.out else Path("results") / "sweeps" / sweep.name
    excluded = "; ".join(f"{count} dropped by {reason}" for reason, count in sweep.excluded.items())
    print(f"sweep {sweep.name}: {len(sweep.points)} points" + (f" ({excluded})" if excluded else "")
          + f" -> {out}/")
    table = run_sweep(sweep, out, method=method, workers=args.workers, scheduler=args.scheduler,
                      progress=not args.no_progress)
    failed = table[table.status != "ok"]
    column = OBJECTIVES[sweep.objective]
    shown = ["network", "batch", "mapping", *[f.text for f in sweep.vary], *[f.text for f in sweep.adjusted],
             "energy_total", "energy_per_mac", "cycles_total", "pe_utilization", "edp"]
    shown = list(dict.fromkeys(c for c in shown if c in table.columns and (c not in ("network", "batch", "mapping")
                                                                           or table[c].nunique() > 1)))
    print(f"\nbest points by {sweep.objective} ({column}; energy in {table.energy_unit.iloc[0]}):")
    _print_table(best_points(table, sweep.objective, args.top)[shown])
    if len(failed):
        print(f"\n{len(failed)} points not mappable (status column of summary.csv), e.g. {failed.status.iloc[0]}")
    print(f"\nwrote {out}/summary.csv ({len(table)} rows) and {out}/points/; plots: eapsim sweep-plot {out}")
    return 0


def _sweep_plot(args: argparse.Namespace) -> int:
    from sim.sweep_plots import plot_sweep

    written = plot_sweep(args.dir, objective=args.objective)
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def _add_sweep_commands(commands) -> None:
    sweep = commands.add_parser("sweep", help="run a design-space sweep file (resumable); write summary.csv")
    sweep.add_argument("sweep", help="sweep file (TOML; see experiments/sweeps/)")
    sweep.add_argument("--out", help="output directory (default results/sweeps/<name>); a re-run resumes it")
    sweep.add_argument("--engine", action="store_true", help="count with the cycle-level engine instead of the closed form")
    sweep.add_argument("--scheduler", help="run on a Dask distributed scheduler, tcp://HOST:PORT (extra 'dist')")
    sweep.add_argument("--workers", type=int, help="local worker processes (default: every core)")
    sweep.add_argument("--top", type=int, default=10, help="best points to print (default 10)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.set_defaults(func=_sweep)
    plot = commands.add_parser("sweep-plot", help="draw a sweep's plots from its summary.csv")
    plot.add_argument("dir", help="the sweep's output directory (holds summary.csv)")
    plot.add_argument("--objective", choices=("energy", "energy_per_mac", "cycles", "edp"),
                      help="what ranks the points (default: the sweep file's objective)")
    plot.set_defaults(func=_sweep_plot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eapsim", description="Simulate DNN accelerators and where their energy goes.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="simulate a network or one layer on an architecture; write CSVs, manifest, plot")
    _add_run_options(run)
    run.set_defaults(func=_run)
    demo = commands.add_parser("demo", help=f"the main job: {DEFAULT_NETWORK} on {DEFAULT_HW}, into results/demo")
    demo.set_defaults(func=_run, network=DEFAULT_NETWORK, hw=DEFAULT_HW, layer=None, mapping=None, batch=1,
                      method="engine", seed=0, out="results/demo", dry_run=False, no_progress=False,
                      input_density=None, clustered=False, mapper="search", dataflow=None,
                      objective="energy")
    zoo = commands.add_parser("zoo", help="the model zoo table, or one network's layers")
    zoo.add_argument("--network", help=f"one of: {', '.join(networks.available())}")
    zoo.set_defaults(func=_cmd_zoo)
    _add_sweep_commands(commands)
    _add_prune_command(commands)
    return parser


def _add_prune_command(commands) -> None:
    """``eapsim prune``: the pruning driver (pruning/cli.py owns its options)."""
    from pruning import cli as prune_cli

    prune = commands.add_parser("prune", help="energy-aware vs magnitude pruning of a trained baseline; "
                                              "writes decisions, summary, plots")
    prune_cli.add_arguments(prune)
    prune.set_defaults(func=prune_cli.command)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, MappingError, NetworkError, UsageError, OSError) as exc:
        print(f"eapsim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
