"""Sweep throughput: 1000 AlexNet points (mapper + closed-form model) on local processes
and on a 2-worker Dask LocalCluster, side by side, against the target of 1000 points in 5 minutes.

The points vary the Eyeriss chip's PE rows (5 values) x PE columns (10) x filter scratchpad (4) x
psum scratchpad (5). Each executor starts fresh processes and writes into a fresh directory, so no
result is reused between the two; both must produce the same summary.csv, byte for byte.

    python experiments/bench_sweep.py                 # 1000 points (minutes)
    python experiments/bench_sweep.py --quick         # 8 points (smoke test)
    python experiments/bench_sweep.py --mapping default   # the fast default mapping instead of the mapper
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from sim.sweep import load_sweep, run_sweep

TARGET_S_PER_1000 = 300.0

SWEEP = """format_version = 1
name = "bench_sweep"
description = "AlexNet on Eyeriss variants: PE rows x PE columns x filter spad x psum spad"
base = "eyeriss_v1"
networks = ["alexnet"]
mapping = ["{mapping}"]
[vary]
"level[ifmap_spad].fanout_y" = {rows}
"level[ifmap_spad].fanout_x" = {columns}
"level[filter_spad].capacity_words" = {filters}
"level[psum_spad].capacity_words" = {psums}
"""
FULL = dict(rows=[8, 10, 12, 14, 16], columns=list(range(8, 27, 2)), filters=[56, 112, 224, 448],
            psums=[16, 24, 32, 48, 64])
QUICK = dict(rows=[12], columns=[7, 14], filters=[112, 224], psums=[16, 24])


def _timed(label: str, run) -> tuple[float, pd.DataFrame]:
    start = time.perf_counter()
    table = run()
    return time.perf_counter() - start, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 points: a smoke test")
    parser.add_argument("--out", default="results/bench_sweep", help="where bench.csv goes")
    parser.add_argument("--mapping", default="search", help="mapping policy of every point (default search: the mapper)")
    parser.add_argument("--workers", type=int, default=2, help="local processes and Dask workers (default 2)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    try:
        spec = scratch / "bench.toml"
        spec.write_text(SWEEP.format(mapping=args.mapping,
                                     **{k: str(v) for k, v in (QUICK if args.quick else FULL).items()}))
        sweep = load_sweep(spec)
        points = len(sweep.points)
        print(f"{points} points: AlexNet (8 MAC layers) on eyeriss_v1 variants, mapping policy {args.mapping}, closed-form model; "
              f"{os.cpu_count()} cores visible, load average {os.getloadavg()[0]:.1f}\n")
        rows = []
        local_s, local = _timed("local", lambda: run_sweep(sweep, scratch / "local", workers=args.workers, progress=False))
        rows.append(("local processes", args.workers, local_s))
        try:
            from distributed import LocalCluster
        except ImportError:
            print("dask.distributed not installed (pip install -e \".[dist]\"): Dask column skipped")
            dask_s = None
        else:
            start = time.perf_counter()
            with LocalCluster(n_workers=args.workers, threads_per_worker=1, host="127.0.0.1", processes=True,
                              dashboard_address=None) as cluster:
                startup_s = time.perf_counter() - start
                dask_s, _ = _timed("dask", lambda: run_sweep(sweep, scratch / "dask", scheduler=cluster.scheduler_address,
                                                              progress=False))
            rows.append(("Dask LocalCluster", args.workers, dask_s))
            same = (scratch / "local" / "summary.csv").read_bytes() == (scratch / "dask" / "summary.csv").read_bytes()
            if not same:
                raise SystemExit("local and Dask summaries differ")
        table = pd.DataFrame(rows, columns=["executor", "workers", "seconds"])
        table["points"] = points
        table["points_per_s"] = points / table.seconds
        table["s_per_1000_points"] = 1000 / table.points_per_s
        table["target_s_per_1000"] = TARGET_S_PER_1000
        table["time_over_target"] = table.s_per_1000_points / TARGET_S_PER_1000
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        if dask_s is not None:
            print(f"\nDask cluster start-up {startup_s:.1f} s (not included); Dask/local time ratio "
                  f"{dask_s / local_s:.2f}; summaries identical byte for byte")
        ok = (local.status == "ok").sum()
        print(f"{ok}/{points} points mapped; best energy {local.energy_total.min():.4g} "
              f"({local.energy_unit.iloc[0]}), worst {local.energy_total.max():.4g}")
        table.to_csv(out / "bench.csv", index=False)
        print(f"\nwrote {out}/bench.csv")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
