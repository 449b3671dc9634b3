"""The mapper's batched closed form (sim.mapspace) equals the model (sim.model) on every counter."""
from __future__ import annotations

import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.energy import access_energy
from sim.mapping import build_nest
from sim.mapspace import arch_tables, encode, evaluate, fast_counts
from sim.model import closed_form_counts
from tests.sim_cases import architectures, layer_dims, mappings


@st.composite
def cases(draw):
    dims = draw(layer_dims(max_macs=3000))
    arch = draw(architectures())
    return dims, arch, draw(mappings(dims, arch))


@settings(max_examples=int(os.environ.get("EAPSIM_EXAMPLES", 100)), deadline=None)
@given(cases())
def test_kernel_counts_equal_closed_form(case):
    dims, arch, mapping = case
    nest = build_nest(dims, arch, mapping, check_capacity_fit=False)
    expected = closed_form_counts(nest, arch)
    got, _ = fast_counts(dims, arch, mapping)
    assert got.differences(expected) == []
    energy = evaluate(dims, arch_tables(arch), encode(mapping, arch)[None]).energy[0]
    assert np.isclose(energy, access_energy(expected, arch).energy.sum(), rtol=1e-12)


@settings(max_examples=int(os.environ.get("EAPSIM_EXAMPLES", 100)), deadline=None)
@given(cases(), st.data())
def test_kernel_capacity_check_equals_build_nest(case, data):
    import dataclasses

    from sim.mapping import capacity_violation

    dims, arch, mapping = case
    levels = [arch.levels[0]]
    for level in arch.levels[1:]:
        capacity = data.draw(st.integers(1, 64))
        partition = {}
        if level.keeps and data.draw(st.booleans()):
            d = data.draw(st.sampled_from(level.keeps))
            partition = {d: data.draw(st.integers(0, capacity))}
        levels.append(dataclasses.replace(level, capacity_words=capacity, partition_words=partition))
    arch = dataclasses.replace(arch, levels=tuple(levels))
    nest = build_nest(dims, arch, mapping, check_capacity_fit=False)
    _, fits = fast_counts(dims, arch, mapping)
    assert fits == (capacity_violation(nest, arch) is None)
