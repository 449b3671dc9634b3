"""The pruning driver: passes of layer steps and a global fine-tune, while accuracy stays above the
threshold (energy-aware pruning, Yang, Chen, Sze, CVPR 2017; the magnitude baseline runs the same loop).

A pass: simulate the network (real weights and activations) to order the selected layers (by
energy, highest first, for energy-aware pruning; network order for magnitude pruning); for each layer,
a step prunes it as far as the held-out accuracy stays >= threshold (``layer_step``); then the whole
network is fine-tuned by back-propagation with the masks held. The run ends when a fine-tuned network
falls below the threshold, a pass no longer lowers the energy, the energy budget is met or the passes
run out; the output is the last fine-tuned network above the threshold. Every step is one row of
``decisions`` and leaves a resumable state (``pruning.state``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from networks import training
from networks.io import load_npz
from networks.network import PRUNABLE_PARAM, Network
from pruning.calibration import layer_statistics
from pruning.energy import (
    ENERGY_COLUMNS, MappingPolicy, cached_policy, energy_order, network_totals, simulate_energy,
)
from pruning.layer_step import make_pruner, search_count
from pruning.structured import ChannelPruner, structured_layers
from pruning.selection import ALL_LAYERS, LayerSelector
from pruning.state import load_state, save_step
from sim.arch import Architecture

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Method:
    """What a method does in each layer step: the layer ``order`` ("energy": simulated energy,
    highest first; "network": network order), the weight ``selection`` ("output_error" or
    "magnitude") and whether the kept weights are refitted by least squares."""

    name: str
    order: str
    selection: str
    refit: bool
    structured: bool = False


ENERGY_AWARE = Method(name="energy_aware", order="energy", selection="output_error", refit=True)
MAGNITUDE = Method(name="magnitude", order="network", selection="magnitude", refit=False)
# Beyond the paper: whole output channels (filters, or FC neurons) in energy order, chosen by the
# output error of the consumer layer, which is refitted by least squares (``pruning.structured``).
STRUCTURED = Method(name="structured", order="energy", selection="output_error", refit=True, structured=True)
METHODS = {m.name: m for m in (ENERGY_AWARE, MAGNITUDE, STRUCTURED)}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """``accuracy_drop``: the threshold is the baseline's held-out top-1 minus this (fraction);
    ``step_accuracy_drop``: optionally, how far below the pass's starting accuracy one layer step
    may go (None: down to the threshold); ``min_density`` floors each layer's density;
    ``finetune_images`` training images drawn per pass for ``finetune_epochs`` epochs of SGD;
    ``energy_budget``: stop once energy <= this fraction of the unpruned network's."""

    accuracy_drop: float = 0.01
    step_accuracy_drop: float | None = None
    max_passes: int = 6
    search_steps: int = 7
    min_density: float = 0.005
    min_pass_energy_gain: float = 0.01
    finetune_epochs: int = 1
    finetune_images: int = 60_000
    finetune_lr: float = 0.01
    finetune_batch: int = 64
    calibration_rows: int = 50_000
    prefilter_factor: float = 2.0
    energy_budget: float | None = None
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class PruningData:
    """Images (N, C, H, W) float32 and labels: ``train`` for fine-tuning, ``calibration`` (images only)
    for the least-squares statistics, ``heldout`` for every accuracy decision, ``energy_images`` the
    batch the simulator runs on."""

    train_images: np.ndarray
    train_labels: np.ndarray
    calibration_images: np.ndarray
    heldout_images: np.ndarray
    heldout_labels: np.ndarray
    energy_images: np.ndarray


@dataclass
class PruningRun:
    method: str
    network: Network  # the output: last fine-tuned network above the threshold
    decisions: pd.DataFrame
    baseline_accuracy: float
    threshold: float
    state: dict


def _energy_columns(prefix: str, totals: dict[str, float]) -> dict[str, float]:
    return {f"{column}_{prefix}": totals[column] for column in
            (*ENERGY_COLUMNS, "macs_performed", "weights_nonzero", "cycles_total")}


def _fractions(method: Method | None, before: float, requested: float, achieved: float) -> dict[str, float]:
    """``density_*`` (unstructured: fraction of the layer's weights non-zero) or ``keep_fraction_*``
    (structured: fraction of the layer's original output channels kept); the other stays NaN."""
    values = {"before": before, "requested": requested, "achieved": achieved}
    structured = method is not None and method.structured
    return {**{f"density_{k}": (math.nan if structured else v) for k, v in values.items()},
            **{f"keep_fraction_{k}": (v if structured else math.nan) for k, v in values.items()}}


def run_pruning(
    network: Network, arch: Architecture, data: PruningData, *, method: Method, settings: Settings = Settings(),
    selector: LayerSelector = ALL_LAYERS, out_dir: str | Path, mapping_policy: MappingPolicy | None = None,
    progress: bool = True,
) -> PruningRun:
    """Prune a copy of ``network``; resumes from ``out_dir``'s state when there is one."""
    out_dir = Path(out_dir)
    layers = selector.select(network)
    if method.structured:
        layers = structured_layers(network, layers)
    settings_record = {"method": dataclasses.asdict(method), **dataclasses.asdict(settings), "layers": layers,
                       "architecture": arch.name, "network": network.name}

    def accuracy_of(net: Network) -> float:
        if net is current and "accuracy" in latest:
            return latest["accuracy"]
        accuracy = training.evaluate(net, data.heldout_images, data.heldout_labels)["top1"]
        if net is current:
            latest["accuracy"] = accuracy
        return accuracy

    policy = cached_policy(mapping_policy)
    latest: dict[str, object] = {}  # simulation and accuracy of ``current``, until it changes (cleared)

    def simulate(net: Network) -> pd.DataFrame:
        if net is current and "table" in latest:
            return latest["table"]
        table = simulate_energy(net, arch, data.energy_images, mapping_policy=policy)
        if net is current:
            latest["table"] = table
        return table

    current = None

    resumed = load_state(out_dir, settings_record)
    if resumed is None:
        baseline_accuracy = accuracy_of(network)
        unpruned = network_totals(simulate(network))
        state = {"settings": settings_record, "step": 0, "pass": 0, "phase": "start", "order": [], "next": 0,
                 "baseline_accuracy": baseline_accuracy, "threshold": baseline_accuracy - settings.accuracy_drop,
                 "unpruned": unpruned, "pass_start_energy": unpruned["energy_total"],
                 "pass_start_accuracy": baseline_accuracy, "best_step": 0, "stop_reason": "", "rows": [],
                 "original_channels": {name: int(network.param_shapes(name)[PRUNABLE_PARAM][0]) for name in layers}}
        current = network.copy()
        save_step(out_dir, state, current, current)
    else:
        state, current, _ = resumed
        log.info("%s: resuming at step %d (pass %d, %s)", out_dir, state["step"], state["pass"], state["phase"])
    threshold = state["threshold"]

    def finish_step(row: dict, *, new_best: bool = False) -> None:
        state["step"] += 1
        state["rows"].append({"step": state["step"], "pass": state["pass"], **row})
        save_step(out_dir, state, current, current if new_best else None)

    bar = tqdm(desc=f"{method.name} pruning {network.name}", unit="step", disable=not progress)
    while state["phase"] != "done":
        if state["phase"] == "start":  # a new pass: rank the layers
            if state["pass"] >= settings.max_passes:
                state.update(phase="done", stop_reason=f"{settings.max_passes} passes done")
                break
            table = simulate(current)
            order = energy_order(table, layers) if method.order == "energy" else list(layers)
            state.update(phase="layers", order=order, next=0, pass_start_energy=float(table.energy_total.sum()),
                         pass_start_accuracy=accuracy_of(current))
            continue
        if state["phase"] == "layers" and state["next"] < len(state["order"]):
            name = state["order"][state["next"]]
            started = time.perf_counter()
            before_table = simulate(current)
            before = network_totals(before_table)
            accuracy_before = accuracy_of(current)
            layer_threshold = threshold
            if settings.step_accuracy_drop is not None:
                layer_threshold = max(threshold, state["pass_start_accuracy"] - settings.step_accuracy_drop)
            rng = np.random.default_rng((settings.seed, state["step"]))
            stats = None
            if not method.structured and (method.selection == "output_error" or method.refit):
                stats = layer_statistics(current, _pass_reference(out_dir), name,
                                         data.calibration_images, rng=rng, max_rows=settings.calibration_rows)
            if method.structured:
                pruner = ChannelPruner.for_layer(current, name, calibration_images=data.calibration_images,
                                                 rng=rng, max_rows=settings.calibration_rows)
                total = state["original_channels"][name]
                lowest = max(1, math.ceil(settings.min_density * total))
            else:
                pruner = make_pruner(current, name, selection=method.selection, refit=method.refit, stats=stats,
                                     prefilter_factor=settings.prefilter_factor)
                total = int(np.prod(current.param_shapes(name)[PRUNABLE_PARAM]))
                lowest = max(1, math.ceil(settings.min_density * total))
            fraction_before = pruner.available / total
            result = search_count(lambda count: pruner.candidate(current, count), accuracy_of,
                                  available=pruner.available, lowest=lowest, threshold=layer_threshold,
                                  steps=settings.search_steps)
            if result.network is not None:
                current = result.network
                latest.clear()
                latest["accuracy"] = result.accuracy
            after_table = simulate(current)
            after = network_totals(after_table)
            layer_energy = lambda t: float(t.set_index("layer").loc[name, "energy_total"])  # noqa: E731
            row = {
                "layer": name, "method": method.name, **_fractions(method, fraction_before, result.keep_count / total,
                                                                   pruner.available_in(current) / total),
                "accuracy_before": accuracy_before,
                "accuracy_after": accuracy_before if result.network is None else result.accuracy,
                "threshold": layer_threshold, "evaluations": result.evaluations,
                "layer_energy_before": layer_energy(before_table), "layer_energy_after": layer_energy(after_table),
                **_energy_columns("before", before), **_energy_columns("after", after),
                "seconds": time.perf_counter() - started,
            }
            state["next"] += 1
            if settings.energy_budget is not None and after["energy_total"] <= settings.energy_budget * state["unpruned"]["energy_total"]:
                state["next"] = len(state["order"])
                state["budget_met"] = True
            finish_step(row)
            bar.update()
            continue
        # the pass's global fine-tune
        started = time.perf_counter()
        before = network_totals(simulate(current))
        accuracy_before = accuracy_of(current)
        rng = np.random.default_rng((settings.seed, state["step"], 1))
        count = min(settings.finetune_images, len(data.train_images))
        pick = np.sort(rng.choice(len(data.train_images), count, replace=False))
        training.fit(current, train_images=data.train_images[pick], train_labels=data.train_labels[pick],
                     epochs=settings.finetune_epochs, rng=rng, batch_size=settings.finetune_batch,
                     lr=settings.finetune_lr, schedule="cosine", progress=False)
        latest.clear()
        accuracy_after = accuracy_of(current)
        after = network_totals(simulate(current))
        above = accuracy_after >= threshold
        gain = 1 - after["energy_total"] / state["pass_start_energy"]
        row = {"layer": "(all)", "method": "finetune", **_fractions(None, math.nan, math.nan, math.nan),
               "accuracy_before": accuracy_before, "accuracy_after": accuracy_after, "threshold": threshold, "evaluations": 1, "layer_energy_before": math.nan, "layer_energy_after": math.nan,
               **_energy_columns("before", before), **_energy_columns("after", after),
               "seconds": time.perf_counter() - started}
        if above:
            state["best_step"] = state["step"] + 1
        state["pass"] += 1
        if not above:
            state.update(phase="done", stop_reason=f"fine-tuned accuracy {accuracy_after:.4f} below threshold {threshold:.4f}")
        elif state.get("budget_met"):
            state.update(phase="done", stop_reason="energy budget met")
        elif gain < settings.min_pass_energy_gain:
            state.update(phase="done", stop_reason=f"pass lowered energy by {100 * gain:.2f}% only")
        else:
            state["phase"] = "start"
        finish_step(row, new_best=above)
        bar.update()
    bar.close()
    save_step(out_dir, state, current, None)
    _, _, best = load_state(out_dir, settings_record)  # the last fine-tuned network above the threshold
    return PruningRun(method=method.name, network=best, decisions=pd.DataFrame(state["rows"]),
                      baseline_accuracy=state["baseline_accuracy"], threshold=threshold, state=state)


def _pass_reference(out_dir: Path) -> Network:
    """The network as it was when the pass started (the outputs its layer steps keep): the model of
    the pass's last fine-tune, which ``best.npz`` holds, or the unpruned network in pass 0."""
    return load_npz(out_dir / "best.npz")
