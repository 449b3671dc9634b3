"""Run outputs: tidy tables from layer results, and the run directory (CSVs, manifest, plot).

Files of a run (column meanings in the README):
- ``layers.csv``: one row per simulated layer;
- ``access_counts.csv``: one row per layer x level x data type x action;
- ``network.csv``: one row of totals;
- ``manifest.json``: inputs resolved (architecture, mappings), versions, git revision, command line;
- ``energy_breakdown.png``: drawn from ``layers.csv``.
A run directory is written whole or not at all (written aside, then renamed into place).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import pandas as pd

from sim.arch import Architecture
from sim.energy import DATA_TYPE_CLASSES, LEVEL_CLASSES
from sim.simulate import LayerResult

BREAKDOWN_BY_DATA_TYPE = [f"energy_{name}" for name in DATA_TYPE_CLASSES.values()]
BREAKDOWN_BY_LEVEL = [f"energy_{cls.lower()}" for cls in LEVEL_CLASSES]


def layers_table(results: list[LayerResult], arch: Architecture) -> pd.DataFrame:
    return pd.DataFrame([r.summary_row(arch) for r in results])


def access_table(results: list[LayerResult], arch: Architecture) -> pd.DataFrame:
    frames = []
    for r in results:
        frame = r.access.copy()
        frame.insert(0, "layer", r.layer)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["energy_unit"] = arch.energy_unit
    return table


def network_table(layers: pd.DataFrame, *, network: str, arch: Architecture, batch: int) -> pd.DataFrame:
    sums = ["macs_dense", "macs_effective", "cycles_total", "latency_s", "energy_total", *BREAKDOWN_BY_DATA_TYPE, *BREAKDOWN_BY_LEVEL]
    sums += [c for c in ("cycles_compute", "cycles_stall_dram", "cycles_stall_buffer", "cycles_stall_noc") if c in layers]
    row = {"network": network, "architecture": arch.name, "batch": batch, "layers_simulated": len(layers)}
    row.update({column: layers[column].sum() for column in sums})
    row["energy_per_mac"] = row["energy_total"] / row["macs_dense"]
    row["energy_unit"] = arch.energy_unit
    return pd.DataFrame([row])


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("eapsim", "numpy", "numba", "pandas", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def provenance(inputs: dict, hardware=None) -> dict:
    """What every manifest records: when, the command line, the inputs, the package versions, the git
    revision and, given a hardware object (a frozen dataclass read from ``source_file``), its
    resolved fields and the config file's hash."""
    record = {
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command_line": sys.argv,
        "inputs": inputs,
    }
    if hardware is not None:
        config_path = Path(hardware.source_file)
        record["architecture"] = dataclasses.asdict(hardware)
        record["architecture_sha256"] = (hashlib.sha256(config_path.read_bytes()).hexdigest()
                                         if config_path.is_file() else None)
    return {**record, "versions": _versions(), "git_revision": _git_revision()}


def manifest(results: list[LayerResult], arch: Architecture, **inputs) -> dict:
    return {
        **provenance(inputs, arch),
        "mappings": {r.layer: {**r.mapping.to_dict(), "loop_nest": r.mapping.loop_nest().splitlines()} for r in results},
    }


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (named ``.<name>.<random>.tmp``) that replaces ``path`` when
    the block ends without error and is removed when it fails: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temp)
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)


def save_figure(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path) as temp:
            fig.savefig(temp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return Path(path)


@contextmanager
def staged_directory(out_dir: str | Path) -> Iterator[Path]:
    """A fresh staging directory beside ``out_dir`` that replaces ``out_dir`` when the block ends
    without error, and is removed when it fails: a run leaves either its complete outputs or none."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield staging
        if out_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, retired / out_dir.name)
            os.replace(staging, out_dir)
            shutil.rmtree(retired)
        else:
            os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_run(out_dir: str | Path, results: list[LayerResult], arch: Architecture, *, network: str, batch: int, **inputs) -> Path:
    """Write every output file of a run into ``out_dir`` (replacing a previous run there)."""
    from sim.plots import plot_energy_breakdown  # matplotlib only when writing

    out_dir = Path(out_dir)
    with staged_directory(out_dir) as staging:
        layers = layers_table(results, arch)
        layers.to_csv(staging / "layers.csv", index=False)
        access_table(results, arch).to_csv(staging / "access_counts.csv", index=False)
        network_table(layers, network=network, arch=arch, batch=batch).to_csv(staging / "network.csv", index=False)
        (staging / "manifest.json").write_text(
            json.dumps(manifest(results, arch, network=network, batch=batch, **inputs), indent=2, default=str)
        )
        plot_energy_breakdown(staging / "layers.csv", staging / "energy_breakdown.png", title=f"{network} on {arch.name}")
    return out_dir
