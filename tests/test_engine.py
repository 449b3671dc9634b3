"""The engine against its naive twin and against the closed-form model, exactly, on random cases."""
from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.engine import run_engine
from sim.mapping import build_nest, part_dims
from sim.model import closed_form_counts
from tests.naive_engine import naive_counts, naive_layer, naive_layer_in_nest_order
from tests.sim_cases import (
    architectures, layer_dims, mappings, reference_conv, remainder_mappings, temporal_remainder_mappings,
)


@st.composite
def cases(draw, max_macs=3000):
    dims = draw(layer_dims(max_macs=max_macs))
    arch = draw(architectures())
    mapping = draw(mappings(dims, arch))
    seed = draw(st.integers(0, 2**31))
    return dims, arch, mapping, seed


def _tensors(dims, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(dims.G * dims.M * dims.C * dims.R * dims.S).astype(np.float32)
    x = rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W).astype(np.float32)
    w[rng.random(w.size) < 0.3] = 0.0
    x[rng.random(x.size) < 0.3] = 0.0
    return w, x


@settings(max_examples=int(os.environ.get("EAPSIM_EXAMPLES", 150)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_engine_equals_closed_form_for_every_counter(case):
    dims, arch, mapping, seed = case
    nest = build_nest(dims, arch, mapping)
    w, x = _tensors(dims, seed)
    engine = run_engine(nest, arch, w, x).counts
    model = closed_form_counts(nest, arch)
    assert engine.differences(model) == [], f"{arch.counting} {[l.multicast for l in arch.levels]}\n{mapping.loop_nest()}"


@settings(max_examples=int(os.environ.get("EAPSIM_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_macs=600))
def test_engine_equals_naive_twin(case):
    dims, arch, mapping, seed = case
    nest = build_nest(dims, arch, mapping)
    w, x = _tensors(dims, seed)
    result = run_engine(nest, arch, w, x)
    naive = naive_counts(nest, arch)
    assert result.counts.differences(naive) == [], f"{arch.counting}\n{mapping.loop_nest()}"
    want_out, want_zero = naive_layer(w, x, nest)
    np.testing.assert_allclose(result.outputs, want_out, rtol=1e-4, atol=1e-4)
    assert result.counts.macs_zero_operand == want_zero


@st.composite
def remainder_cases(draw, max_macs=3000):
    """A layer with a dimension of 3-6 (so that it can be over-covered), on an architecture whose
    fan-out has room on both axes, mapped with a spatial remainder when one fits."""
    dims = draw(layer_dims(max_macs=max_macs // 6))
    dims = part_dims(dims, draw(st.sampled_from(["N", "M", "C", "P", "Q", "R", "S"])), draw(st.integers(3, 6)))
    arch = draw(architectures(min_fanout=2))
    mapping = draw(remainder_mappings(dims, arch))
    seed = draw(st.integers(0, 2**31))
    return dims, arch, mapping, seed


@settings(max_examples=int(os.environ.get("EAPSIM_EXAMPLES", 150)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(remainder_cases())
def test_spatial_remainder_engine_equals_closed_form(case):
    """Idle PEs of a spatial remainder: the engine (which steps over them) and the model (which
    clips tiles and counts only utilised children) agree on every counter, and the layer's outputs
    are still right."""
    dims, arch, mapping, seed = case
    nest = build_nest(dims, arch, mapping)
    w, x = _tensors(dims, seed)
    result = run_engine(nest, arch, w, x)
    model = closed_form_counts(nest, arch)
    assert result.counts.differences(model) == [], f"{arch.counting} {[l.multicast for l in arch.levels]}\n{mapping.loop_nest()}"
    assert result.counts.macs == dims.macs
    np.testing.assert_allclose(result.outputs.reshape(-1), reference_conv(dims, w, x).reshape(-1), rtol=1e-4, atol=1e-4)


@settings(max_examples=int(os.environ.get("EAPSIM_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(remainder_cases(max_macs=600))
def test_spatial_remainder_engine_equals_naive_twin(case):
    dims, arch, mapping, seed = case
    nest = build_nest(dims, arch, mapping)
    w, x = _tensors(dims, seed)
    result = run_engine(nest, arch, w, x)
    assert result.counts.differences(naive_counts(nest, arch)) == [], f"{arch.counting}\n{mapping.loop_nest()}"


@st.composite
def temporal_remainder_cases(draw, max_macs=3000):
    dims = draw(layer_dims(max_macs=max_macs // 6))
    dims = part_dims(dims, draw(st.sampled_from(["N", "G", "M", "P", "Q"])), draw(st.integers(3, 7)))
    arch = draw(architectures())
    mapping = draw(temporal_remainder_mappings(dims, arch))
    seed = draw(st.integers(0, 2**31))
    return dims, arch, mapping, seed


@settings(max_examples=int(os.environ.get("EAPSIM_EXAMPLES", 150)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(temporal_remainder_cases())
def test_temporal_remainder_engine_equals_closed_form(case):
    """A layer run in parts (full passes, then the remainder pass): the engine (each part on its
    slice of the tensors) and the model agree on every counter of every part, the totals add up,
    and the outputs are the layer's."""
    dims, arch, mapping, seed = case
    nest = build_nest(dims, arch, mapping)
    w, x = _tensors(dims, seed)
    result = run_engine(nest, arch, w, x)
    model = closed_form_counts(nest, arch)
    assert result.counts.differences(model) == [], f"{arch.counting}\n{mapping.loop_nest()}"
    assert result.counts.macs == dims.macs
    np.testing.assert_allclose(result.outputs.reshape(-1), reference_conv(dims, w, x).reshape(-1), rtol=1e-4, atol=1e-4)
    if nest.parts:
        assert (model.totals() == sum(part.totals() for part in model.parts)).all()
        assert sum(getattr(part.dims, d) for part, d, _ in nest.parts) == getattr(dims, nest.parts[0][1])


@settings(max_examples=int(os.environ.get("EAPSIM_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_macs=600), st.sampled_from(["none", "weights", "inputs", "both"]))
def test_outputs_equal_nest_order_float32_sums(case, zeros_in):
    """The kernel runs its MACs apart from the tile events, grouped by output: each output must still
    get the same float32 additions in the nest's order, bit for bit; the MACs with a zero operand
    are counted whichever tensors hold zeros."""
    dims, arch, mapping, seed = case
    nest = build_nest(dims, arch, mapping)
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 2.0, dims.G * dims.M * dims.C * dims.R * dims.S).astype(np.float32)
    x = rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W).astype(np.float32)
    x[x == 0.0] = 1.0
    if zeros_in in ("weights", "both"):
        w[rng.random(w.size) < 0.3] = 0.0
    if zeros_in in ("inputs", "both"):
        x[rng.random(x.size) < 0.3] = 0.0
    result = run_engine(nest, arch, w, x)
    assert result.counts.macs_zero_operand == naive_layer(w, x, nest)[1]
    np.testing.assert_array_equal(result.outputs, naive_layer_in_nest_order(w, x, nest))
