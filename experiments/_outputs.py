"""Output directories of the experiment scripts: written whole or not at all, with a manifest.

``write_outputs(out_dir, frames, plots, inputs)`` writes each DataFrame as ``<name>.csv``, draws each
plot (a function of the staging directory, drawn from the CSVs there) and ``manifest.json`` (inputs,
command line, versions, git revision) into a staging directory beside ``out_dir``, then renames it
into place, replacing an earlier run.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

import pandas as pd


def _git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(inputs: dict) -> dict:
    versions = {"python": platform.python_version()}
    for package in ("eapsim", "numpy", "numba", "pandas", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {"created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command_line": sys.argv,
            "inputs": inputs, "versions": versions, "git_revision": _git_revision(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def write_outputs(out_dir: str | Path, frames: dict[str, pd.DataFrame],
                  plots: dict[str, Callable[[Path, Path], None]], inputs: dict) -> Path:
    """``plots``: file name -> function(staging_dir, png_path) drawing from the CSVs in staging_dir."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, frame in frames.items():
            frame.to_csv(staging / f"{name}.csv", index=False)
        for name, draw in plots.items():
            draw(staging, staging / name)
        (staging / "manifest.json").write_text(json.dumps(manifest(inputs), indent=2, default=str) + "\n")
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
    return out_dir
