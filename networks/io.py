"""Save and load a network (architecture, weights, masks) as one ``.npz`` file.

The architecture is stored as JSON inside the archive, so the file fully describes the model.
Keys: ``architecture.json`` (UTF-8 bytes), ``param/<layer>/<name>``, ``mask/<layer>``.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from networks.errors import NetworkError
from networks.layers import layer_from_dict
from networks.network import Network

FORMAT_VERSION = 1
ARCHITECTURE_KEY = "architecture.json"


def architecture_dict(network: Network) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "name": network.name,
        "input_shape": list(network.input_shape),
        "layers": [layer.to_dict() for layer in network.layers],
    }


def save_npz(network: Network, path: str | Path) -> Path:
    """Write ``network`` to ``path`` atomically (no partial file is left on failure)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        ARCHITECTURE_KEY: np.frombuffer(json.dumps(architecture_dict(network)).encode(), dtype=np.uint8)
    }
    for layer_name, params in network.params.items():
        for param_name, array in params.items():
            arrays[f"param/{layer_name}/{param_name}"] = array
    for layer_name, mask in network.masks.items():
        arrays[f"mask/{layer_name}"] = mask
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.part")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_npz(path: str | Path) -> Network:
    path = Path(path)
    if not path.is_file():
        raise NetworkError(f"{path}: no such model file (expected an .npz written by save_npz)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise NetworkError(f"{path}: not a readable .npz archive ({exc})") from None
    with archive:
        if ARCHITECTURE_KEY not in archive:
            raise NetworkError(f"{path}: missing {ARCHITECTURE_KEY!r}; not a model saved by eapsim")
        spec = json.loads(archive[ARCHITECTURE_KEY].tobytes().decode())
        version = spec.get("format_version")
        if version != FORMAT_VERSION:
            raise NetworkError(
                f"{path}: format_version {version!r} is not supported (this version reads {FORMAT_VERSION})"
            )
        params: dict[str, dict[str, np.ndarray]] = {}
        masks: dict[str, np.ndarray] = {}
        for key in archive.files:
            if key.startswith("param/"):
                _, layer_name, param_name = key.split("/", 2)
                params.setdefault(layer_name, {})[param_name] = archive[key]
            elif key.startswith("mask/"):
                masks[key.split("/", 1)[1]] = archive[key]
    try:
        return Network(
            name=spec["name"],
            input_shape=tuple(spec["input_shape"]),
            layers=[layer_from_dict(d) for d in spec["layers"]],
            params=params or None,
            masks=masks,
        )
    except (NetworkError, ValueError, TypeError, KeyError) as exc:
        raise NetworkError(f"{path}: invalid model: {exc}") from None
