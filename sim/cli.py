"""The ``eapsim`` command line. Errors from the library become one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

import networks
from networks.errors import NetworkError


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


def _cmd_zoo(args: argparse.Namespace) -> int:
    if args.network:
        table = networks.get(args.network).summary()
    else:
        table = zoo_table()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    print("eapsim model zoo: weights (excluding biases) and dense MACs per image\n")
    print(zoo_table().to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nPer-layer view of the default network (AlexNet as Eyeriss runs it):\n")
    print(networks.get("alexnet").summary().to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eapsim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="the main job on the built-in default (AlexNet)")
    demo.set_defaults(func=_cmd_demo)
    zoo = commands.add_parser("zoo", help="the model zoo table, or one network's layers")
    zoo.add_argument("--network", help=f"one of: {', '.join(networks.available())}")
    zoo.set_defaults(func=_cmd_zoo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (NetworkError, OSError) as exc:
        print(f"eapsim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
