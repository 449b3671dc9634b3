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
