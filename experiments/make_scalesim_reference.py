"""Run SCALE-Sim v3.0.0 and store its results as the reference data of tests/test_systolic.py.

SCALE-Sim is not a dependency: install it in a separate virtual environment and run this script
with that environment's Python (it imports only SCALE-Sim and the standard library)::

    python3 -m venv /tmp/scalesim-venv
    /tmp/scalesim-venv/bin/pip install scalesim==3.0.0 "numpy<2.3"   # 3.0.0 fails on numpy 2.3+
    /tmp/scalesim-venv/bin/python experiments/make_scalesim_reference.py tiny
    /tmp/scalesim-venv/bin/python experiments/make_scalesim_reference.py alexnet --dataflow os

``tiny`` runs small layers on small arrays for all three dataflows with SRAM traces (seconds) and
writes ``tests/data/scalesim_v3_tiny_layers.csv`` (one row per case: SCALE-Sim's reported cycles,
stalls, utilisation, mapping efficiency, SRAM reads and writes) and
``tests/data/scalesim_v3_tiny_traces.csv`` (per case and operand: the number of SRAM accesses in
every cycle, read from SCALE-Sim's SRAM trace files, space-separated). ``alexnet`` runs
``experiments/topologies/alexnet.csv`` on a 32x32 (``--array 128``: 128x128) array without traces
(minutes) and adds its rows, with the wall time, to ``tests/data/scalesim_v3_alexnet_<N>x<N>.csv``. SCALE-Sim runs in its default
bandwidth mode (``InterfaceBandwidth: CALC``), with the SRAM sizes of its ``configs/scale.cfg``.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
ALEXNET = REPO / "experiments" / "topologies" / "alexnet.csv"

# name, H, W, R, S, C, M, stride: partial folds in both directions, strides whose last window
# SCALE-Sim's ceiling rounds up, 1x1 filters and a fully-connected shape (R = H).
TINY_LAYERS = [
    ("t_basic", 5, 5, 2, 2, 2, 3, 1),
    ("t_stride2_ceil", 7, 7, 2, 2, 1, 5, 2),
    ("t_stride3_ceil", 9, 8, 3, 2, 2, 4, 3),
    ("t_one_by_one", 4, 4, 1, 1, 6, 7, 1),
    ("t_fc", 3, 3, 3, 3, 2, 9, 1),
    ("t_wide", 3, 10, 2, 3, 1, 2, 1),
    ("t_deep", 4, 4, 3, 3, 5, 1, 1),
    ("t_single", 1, 1, 1, 1, 1, 1, 1),
]
TINY_ARRAYS = [(4, 4), (8, 4), (4, 8), (3, 5), (2, 2), (16, 16)]
DATAFLOWS = ("os", "ws", "is")

CONFIG = """[general]
run_name = {name}

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:   64
FilterSramSzkB:  64
OfmapSramSzkB:   64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {dataflow}
MemoryBanks:   1
ReadRequestBuffer: 512
WriteRequestBuffer: 512

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

SUMMARY_FIELDS = ["layer", "ifmap_height", "ifmap_width", "filter_height", "filter_width", "channels",
                  "filters", "stride", "array_rows", "array_cols", "dataflow", "cycles_total",
                  "stall_cycles", "overall_util_percent", "mapping_efficiency_percent",
                  "sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes"]


def run_scalesim(topology: Path, rows: int, cols: int, dataflow: str, work: Path, *, trace: bool) -> Path:
    """Run SCALE-Sim once; returns its report directory."""
    from scalesim.scale_sim import scalesim

    name = f"run_{rows}x{cols}_{dataflow}"
    config = work / f"{name}.cfg"
    config.write_text(CONFIG.format(name=name, rows=rows, cols=cols, dataflow=dataflow))
    layout = work / "layout.csv"
    layout.write_text("Layer name, unused,\n")  # custom layouts are off; SCALE-Sim still opens one
    sim = scalesim(save_disk_space=not trace, verbose=False, config=str(config),
                   topology=str(topology), layout=str(layout))
    sim.run_scale(top_path=str(work))
    return work / name


def read_report(path: Path) -> list[list[str]]:
    with path.open() as handle:
        rows = list(csv.reader(handle))
    return [[cell.strip() for cell in row if cell.strip() != ""] for row in rows[1:] if row]


def summaries(report_dir: Path, layers, rows: int, cols: int, dataflow: str) -> list[dict]:
    compute = read_report(report_dir / "COMPUTE_REPORT.csv")
    detail = read_report(report_dir / "DETAILED_ACCESS_REPORT.csv")
    out = []
    for layer, comp, det in zip(layers, compute, detail, strict=True):
        name, h, w, r, s, c, m, stride = layer
        out.append({
            "layer": name, "ifmap_height": h, "ifmap_width": w, "filter_height": r,
            "filter_width": s, "channels": c, "filters": m, "stride": stride,
            "array_rows": rows, "array_cols": cols, "dataflow": dataflow,
            "cycles_total": int(comp[2]), "stall_cycles": int(comp[3]),
            "overall_util_percent": float(comp[4]), "mapping_efficiency_percent": float(comp[5]),
            "sram_ifmap_reads": int(det[3]), "sram_filter_reads": int(det[6]),
            "sram_ofmap_writes": int(det[9]),
        })
    return out


def trace_counts(path: Path) -> list[int]:
    """Accesses per cycle: the entries other than -1 after the cycle column of each trace row."""
    counts = []
    with path.open() as handle:
        for row in csv.reader(handle):
            counts.append(sum(1 for cell in row[1:] if cell.strip() not in ("", "-1", "-1.0")))
    return counts


def write_topology(path: Path, layers) -> None:
    lines = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"]
    lines += [",".join(str(v) for v in layer) + "," for layer in layers]
    path.write_text("\n".join(lines) + "\n")


def write_csv(path: Path, rows: list[dict], fields: list[str], header_lines: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        for line in header_lines:
            handle.write(f"# {line}\n")
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def provenance() -> list[str]:
    return [f"SCALE-Sim {metadata.version('scalesim')} (pip install scalesim==3.0.0), numpy "
            f"{metadata.version('numpy')}, Python {platform.python_version()}; made by "
            "experiments/make_scalesim_reference.py on "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}; default bandwidth mode (CALC), 64 kB SRAMs"]


def make_tiny() -> None:
    summary_rows, trace_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        topology = work / "tiny.csv"
        write_topology(topology, TINY_LAYERS)
        for rows, cols in TINY_ARRAYS:
            for dataflow in DATAFLOWS:
                run_dir = work / f"{rows}x{cols}_{dataflow}"
                run_dir.mkdir()
                report = run_scalesim(topology, rows, cols, dataflow, run_dir, trace=True)
                summary_rows += summaries(report, TINY_LAYERS, rows, cols, dataflow)
                for layer_id, layer in enumerate(TINY_LAYERS):
                    for operand in ("ifmap", "filter", "ofmap"):
                        counts = trace_counts(report / f"layer{layer_id}" / f"{operand.upper()}_SRAM_TRACE.csv")
                        trace_rows.append({"layer": layer[0], "array_rows": rows, "array_cols": cols,
                                           "dataflow": dataflow, "operand": operand,
                                           "accesses_per_cycle": " ".join(map(str, counts))})
    header = provenance()
    write_csv(DATA / "scalesim_v3_tiny_layers.csv", summary_rows, SUMMARY_FIELDS, header)
    write_csv(DATA / "scalesim_v3_tiny_traces.csv", trace_rows,
              ["layer", "array_rows", "array_cols", "dataflow", "operand", "accesses_per_cycle"],
              header + ["SRAM accesses in each cycle of SCALE-Sim's SRAM trace files (one number per trace row)"])
    print(f"{len(summary_rows)} cases -> {DATA}/scalesim_v3_tiny_*.csv")


def make_alexnet(dataflows: list[str], size: int) -> None:
    layers = []
    with ALEXNET.open() as handle:
        for row in list(csv.reader(handle))[1:]:
            cells = [cell.strip() for cell in row if cell.strip()]
            if cells:
                layers.append((cells[0], *map(int, cells[1:8])))
    path = DATA / f"scalesim_v3_alexnet_{size}x{size}.csv"
    existing = []
    if path.is_file():
        with path.open() as handle:
            existing = [row for row in csv.DictReader(line for line in handle if not line.startswith("#"))
                        if row["dataflow"] not in dataflows]
    rows = existing
    for dataflow in dataflows:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            report = run_scalesim(ALEXNET, size, size, dataflow, Path(tmp), trace=False)
            wall_s = time.perf_counter() - start
            for row in summaries(report, layers, size, size, dataflow):
                row["scalesim_wall_s"] = round(wall_s, 1)
                rows.append(row)
        print(f"alexnet {size}x{size} {dataflow}: {wall_s:.0f} s")
    write_csv(path, rows, SUMMARY_FIELDS + ["scalesim_wall_s"],
              provenance() + ["scalesim_wall_s: SCALE-Sim's wall time for the whole topology (no trace files)"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("tiny", "alexnet"))
    parser.add_argument("--dataflow", nargs="+", choices=DATAFLOWS, default=["os"],
                        help="alexnet: the dataflows to run (each takes minutes)")
    parser.add_argument("--array", type=int, default=32, help="alexnet: rows = columns of the array")
    args = parser.parse_args()
    if args.what == "tiny":
        make_tiny()
    else:
        make_alexnet(args.dataflow, args.array)


if __name__ == "__main__":
    main()
