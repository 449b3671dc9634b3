"""The pruning driver on a tiny trained network: the accuracy threshold holds, pruned weights never
come back, energy-aware layer order is the order of simulated energy, and runs resume."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from networks import training
from networks.layers import Conv2D, FullyConnected, MaxPool, ReLU
from networks.network import Network
from pruning.driver import ENERGY_AWARE, MAGNITUDE, PruningData, Settings, run_pruning
from pruning.energy import simulate_energy
from pruning.errors import PruningError
from sim.config import load_architecture

SETTINGS = Settings(accuracy_drop=0.02, max_passes=2, search_steps=4, finetune_images=300, finetune_lr=0.02,
                    calibration_rows=2000, min_pass_energy_gain=0.0)


def _images(rng, count):
    """Three classes of 1x10x10 images: a bright vertical bar, horizontal bar or diagonal, plus noise."""
    labels = rng.integers(0, 3, count)
    images = 0.5 * rng.standard_normal((count, 1, 10, 10)).astype(np.float32)
    for i, label in enumerate(labels):
        if label == 0:
            images[i, 0, :, 4:6] += 1.5
        elif label == 1:
            images[i, 0, 4:6, :] += 1.5
        else:
            images[i, 0, np.arange(10), np.arange(10)] += 2.0
    return images, labels


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    net = Network(name="tiny", input_shape=(1, 10, 10), layers=[
        Conv2D(name="conv1", out_channels=6, kernel=3), ReLU(name="relu1"), MaxPool(name="pool1", kernel=2),
        Conv2D(name="conv2", out_channels=8, kernel=3), ReLU(name="relu2"),
        FullyConnected(name="fc3", out_features=16), ReLU(name="relu3"), FullyConnected(name="fc4", out_features=3),
    ]).init_params(rng)
    train_x, train_y = _images(rng, 600)
    held_x, held_y = _images(rng, 300)
    training.fit(net, train_images=train_x, train_labels=train_y, epochs=3, rng=rng, batch_size=32, lr=0.05,
                 progress=False)
    data = PruningData(train_images=train_x, train_labels=train_y, calibration_images=train_x[:200],
                       heldout_images=held_x, heldout_labels=held_y, energy_images=held_x[:1])
    return net, data, load_architecture("eyeriss_energy_tool")


def test_energy_aware_run_respects_threshold_order_and_masks(trained, tmp_path):
    net, data, arch = trained
    run = run_pruning(net, arch, data, method=ENERGY_AWARE, settings=SETTINGS, out_dir=tmp_path, progress=False)
    decisions = run.decisions
    assert run.baseline_accuracy > 0.8  # the tiny network did learn
    final = training.evaluate(run.network, data.heldout_images, data.heldout_labels)["top1"]
    assert final >= run.threshold
    steps = decisions[decisions.method != "finetune"]
    assert (steps.accuracy_after >= steps.threshold - 1e-12).all()
    assert steps.density_achieved.lt(1).any()  # something was pruned
    # layer order of the first pass == order of simulated energy of the starting network
    table = simulate_energy(net, arch, data.energy_images)
    expected = list(table.sort_values("energy_total", ascending=False, kind="stable").layer)
    assert list(steps[steps["pass"] == 0].layer) == expected
    # never resurrected: per layer, density never rises; stored weights are zero under the mask
    for _, rows in steps.groupby("layer"):
        assert (np.diff(rows.density_achieved.to_numpy()) <= 0).all()
        assert (rows.density_achieved <= rows.density_before + 1e-12).all()
    for name, mask in run.network.masks.items():
        assert np.all(run.network.params[name]["weight"][~mask] == 0)
    assert net.masks == {}  # the input network is untouched


def test_magnitude_run_uses_network_order(trained, tmp_path):
    net, data, arch = trained
    run = run_pruning(net, arch, data, method=MAGNITUDE, settings=SETTINGS, out_dir=tmp_path, progress=False)
    steps = run.decisions[run.decisions.method != "finetune"]
    assert list(steps[steps["pass"] == 0].layer) == net.prunable_layers
    assert training.evaluate(run.network, data.heldout_images, data.heldout_labels)["top1"] >= run.threshold


def test_resume_after_interruption_gives_the_same_run(trained, tmp_path, monkeypatch):
    net, data, arch = trained
    settings = Settings(**{**SETTINGS.__dict__, "max_passes": 1})
    whole = run_pruning(net, arch, data, method=ENERGY_AWARE, settings=settings, out_dir=tmp_path / "a", progress=False)
    real_fit = training.fit

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pruning(net, arch, data, method=ENERGY_AWARE, settings=settings, out_dir=tmp_path / "b", progress=False)
    monkeypatch.setattr(training, "fit", real_fit)
    resumed = run_pruning(net, arch, data, method=ENERGY_AWARE, settings=settings, out_dir=tmp_path / "b", progress=False)
    columns = [c for c in whole.decisions.columns if c != "seconds"]
    pd.testing.assert_frame_equal(whole.decisions[columns], resumed.decisions[columns])
    for name in net.prunable_layers:
        np.testing.assert_array_equal(whole.network.params[name]["weight"], resumed.network.params[name]["weight"])
    with pytest.raises(PruningError, match="other settings"):
        run_pruning(net, arch, data, method=MAGNITUDE, settings=settings, out_dir=tmp_path / "b", progress=False)


def test_structured_run_shrinks_layers_and_cycles(trained, tmp_path):
    from pruning.driver import STRUCTURED

    net, data, arch = trained
    settings = Settings(**{**SETTINGS.__dict__, "max_passes": 1})
    run = run_pruning(net, arch, data, method=STRUCTURED, settings=settings, out_dir=tmp_path, progress=False)
    steps = run.decisions[run.decisions.method == "structured"]
    assert set(steps.layer) == {"conv1", "conv2", "fc3"}  # fc4 holds the classes
    assert steps.density_achieved.isna().all() and (steps.keep_fraction_achieved <= 1).all()
    assert training.evaluate(run.network, data.heldout_images, data.heldout_labels)["top1"] >= run.threshold
    shrunk = [n for n in ("conv1", "conv2", "fc3") if run.network.param_shapes(n)["weight"][0] < net.param_shapes(n)["weight"][0]]
    assert shrunk, "no layer lost a channel"
    before = simulate_energy(net, arch, data.energy_images).set_index("layer")
    after = simulate_energy(run.network, arch, data.energy_images).set_index("layer")
    assert after.macs_dense.sum() < before.macs_dense.sum()
    assert after.cycles_total.sum() < before.cycles_total.sum()


def test_energy_budget_stops_the_run_once_met(trained, tmp_path):
    net, data, arch = trained
    settings = Settings(**{**SETTINGS.__dict__, "energy_budget": 0.9, "max_passes": 3})
    run = run_pruning(net, arch, data, method=ENERGY_AWARE, settings=settings, out_dir=tmp_path, progress=False)
    unpruned = simulate_energy(net, arch, data.energy_images).energy_total.sum()
    steps = run.decisions[run.decisions.method != "finetune"]
    met = steps.index[steps.energy_total_after <= 0.9 * unpruned]
    assert len(met) > 0 and run.state["stop_reason"] == "energy budget met"
    # no layer step after the one that met the budget; the pass's fine-tune ends the run
    assert list(run.decisions.method.loc[met[0] + 1 :]) == ["finetune"]
