"""The ``eapsim`` command line. Errors from the library become one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

import networks
from networks.errors import NetworkError
from sim.errors import ConfigError, UsageError
from sim.mapping import MappingError

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
    from sim.config import load_architecture
    from sim.mapping import load_mapping
    from sim.results import layers_table, network_table, write_run
    from sim.simulate import parse_layer, simulate_layer, simulate_network
    from sim.synthetic import profile_from_option

    arch = load_architecture(args.hw)
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
        print(f"mapping: {args.mapping or 'default'}; output: {out}")
        if args.layer is None and data.synthetic:
            print(f"data: {data.description}{'; zeros clustered' if data.clustered else ''}")
        return 0
    if args.layer is not None:
        results = [simulate_layer(dims, arch, layer="layer", mapping=mapping, method=args.method,
                                  rng=__import__("numpy").random.default_rng(args.seed))]
    else:
        results = simulate_network(network, arch, batch=args.batch, method=args.method, seed=args.seed,
                                   data=data, progress=not args.no_progress)
    write_run(out, results, arch, network=subject, batch=args.batch, method=args.method, seed=args.seed,
              hw=str(args.hw), mapping=args.mapping, input_density=args.input_density, clustered=args.clustered)
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
    parser.add_argument("--network", default=network_default, help=f"zoo network (default {network_default}); one of: {', '.join(networks.available())}")
    parser.add_argument("--hw", default=DEFAULT_HW, help=f"hardware config: a TOML path or a preset name (default {DEFAULT_HW})")
    parser.add_argument("--layer", help='one layer instead of a network, e.g. "N=1,C=128,M=256,P=56,Q=56,R=3,S=3,stride=1" (M, C per group)')
    parser.add_argument("--mapping", help="a fixed mapping TOML file for --layer (default: the built-in default mapping)")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eapsim", description="Simulate DNN accelerators and where their energy goes.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="simulate a network or one layer on an architecture; write CSVs, manifest, plot")
    _add_run_options(run)
    run.set_defaults(func=_run)
    demo = commands.add_parser("demo", help=f"the main job: {DEFAULT_NETWORK} on {DEFAULT_HW}, into results/demo")
    demo.set_defaults(func=_run, network=DEFAULT_NETWORK, hw=DEFAULT_HW, layer=None, mapping=None, batch=1,
                      method="engine", seed=0, out="results/demo", dry_run=False, no_progress=False,
                      input_density=None, clustered=False)
    zoo = commands.add_parser("zoo", help="the model zoo table, or one network's layers")
    zoo.add_argument("--network", help=f"one of: {', '.join(networks.available())}")
    zoo.set_defaults(func=_cmd_zoo)
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
