"""Output directories of the experiment scripts: written whole or not at all, with a manifest.

``write_outputs(out_dir, frames, plots, inputs)`` writes each DataFrame as ``<name>.csv``, draws each
plot (a function of the staging directory, drawn from the CSVs there) and ``manifest.json`` (inputs,
command line, versions, git revision) into a staging directory beside ``out_dir``, then renames it
into place, replacing an earlier run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pandas as pd

from sim.results import provenance, staged_directory


def manifest(inputs: dict) -> dict:
    return {**provenance(inputs),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def write_outputs(out_dir: str | Path, frames: dict[str, pd.DataFrame],
                  plots: dict[str, Callable[[Path, Path], None]], inputs: dict) -> Path:
    """``plots``: file name -> function(staging_dir, png_path) drawing from the CSVs in staging_dir."""
    out_dir = Path(out_dir)
    with staged_directory(out_dir) as staging:
        for name, frame in frames.items():
            frame.to_csv(staging / f"{name}.csv", index=False)
        for name, draw in plots.items():
            draw(staging, staging / name)
        (staging / "manifest.json").write_text(json.dumps(manifest(inputs), indent=2, default=str) + "\n")
    return out_dir
