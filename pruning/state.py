"""Resumable runs: after every finished step the run directory holds the model of that step
(``model_step<NNNN>.npz``) and ``state.json`` naming it, each written atomically (temp file, then
``os.replace``), state last. A run that stops anywhere resumes from its last finished step; a
``state.json`` written with other settings is an error naming the directory, never mixed in."""
from __future__ import annotations

import json
from pathlib import Path

from networks.io import load_npz, save_npz
from networks.network import Network
from pruning.errors import PruningError
from sim.results import atomic_file

STATE_FILE = "state.json"
STATE_VERSION = 1


def write_json_atomic(path: Path, payload: dict) -> None:
    with atomic_file(path) as temp:
        temp.write_text(json.dumps(payload, indent=1, default=float))


def model_file(step: int) -> str:
    return f"model_step{step:04d}.npz"


def save_step(directory: Path, state: dict, network: Network, best: Network | None) -> None:
    """The model of step ``state['step']`` (and the best model so far, when it changed), then the
    state naming them; older step models are removed once the new state is in place."""
    directory.mkdir(parents=True, exist_ok=True)
    current = model_file(state["step"])
    save_npz(network, directory / current)
    state = {**state, "version": STATE_VERSION, "model": current}
    if best is not None:
        save_npz(best, directory / "best.npz")
    write_json_atomic(directory / STATE_FILE, state)
    for old in directory.glob("model_step*.npz"):
        if old.name != current:
            old.unlink(missing_ok=True)


def load_state(directory: Path, settings: dict) -> tuple[dict, Network, Network] | None:
    """(state, current model, best model) of an unfinished or finished run, or None without one."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PruningError(f"{path}: not valid JSON ({exc}); delete the directory to start over") from None
    if state.get("version") != STATE_VERSION or state.get("settings") != settings:
        raise PruningError(
            f"{path} belongs to a run with other settings ({state.get('settings')}); use another --out "
            f"directory or delete it to start over"
        )
    return state, load_npz(directory / state["model"]), load_npz(directory / "best.npz")
