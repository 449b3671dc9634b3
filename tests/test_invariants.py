"""Invariants every count must satisfy, as small reusable checkers, applied to random cases.

The checkers take ``(counts, nest, arch)`` and raise AssertionError with a readable message. The
distinct elements a level instance serves (its partition) are computed here independently of
``sim.model``, by enumerating every iteration of the (small) loop nest.
"""
from __future__ import annotations

import dataclasses
import math
import os

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from networks.layers import LoopDims
from sim import engine as engine_module
from sim import kernels
from sim.arch import DATA_TYPES, Architecture, EnergyEntry, StorageLevel
from sim.config import load_architecture
from sim.counts import AccessCounts
from sim.energy import DATA_TYPE_CLASSES, LEVEL_CLASSES, access_energy, energy_breakdown
from sim.engine import run_engine
from sim.mapping import Nest, build_nest, mapping_from_loops
from sim.model import closed_form_counts, partition_size
from tests.sim_cases import architectures, layer_dims, mappings, reference_conv

EXAMPLES = int(os.environ.get("EAPSIM_EXAMPLES", 150))


# ------------------------------------------------------------------------------------------------
# Independent partition sizes (brute force over the iteration space)
# ------------------------------------------------------------------------------------------------
def element_keys(nest: Nest) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """For every MAC of the nest (in nest order): the flat index of the weight, input and output it
    touches, and the index-vector of its loops (MACs x loops)."""
    loops = nest.loops
    if loops:
        idx = np.indices([l.bound for l in loops]).reshape(len(loops), -1).T
    else:
        idx = np.zeros((1, 0), np.int64)
    v = {d: np.zeros(len(idx), np.int64) for d in "NGMCPQRS"}
    for k, loop in enumerate(loops):
        v[loop.dim] = v[loop.dim] + idx[:, k] * loop.step
    dm = nest.dims
    h = v["P"] * dm.stride + v["R"]
    w = v["Q"] * dm.stride + v["S"]
    keys = {
        "weights": (((v["G"] * dm.M + v["M"]) * dm.C + v["C"]) * dm.R + v["R"]) * dm.S + v["S"],
        "inputs": (((v["N"] * dm.G + v["G"]) * dm.C + v["C"]) * dm.H + h) * dm.W + w,
        "outputs": (((v["N"] * dm.G + v["G"]) * dm.M + v["M"]) * dm.P + v["P"]) * dm.Q + v["Q"],
    }
    return keys, idx


def distinct_per_instance(nest: Nest, level: int, data_type: str) -> int:
    """Distinct elements of ``data_type`` one instance of ``level`` ever serves (the largest over the
    utilised instances; an instance is fixed by the spatial loops above the level)."""
    keys, idx = element_keys(nest)
    instance = np.zeros(len(idx), np.int64)
    for k, loop in enumerate(nest.loops_above(level)):
        if loop.axis is not None:
            instance = instance * loop.bound + idx[:, k]
    key = keys[data_type]
    pairs = np.unique(instance * (int(key.max()) + 1) + key)
    _, per_instance = np.unique(pairs // (int(key.max()) + 1), return_counts=True)
    return int(per_instance.max())


def layer_sizes(dims: LoopDims) -> dict[str, int]:
    return {
        "weights": dims.G * dims.M * dims.C * dims.R * dims.S,
        "inputs": dims.N * dims.G * dims.C * dims.H * dims.W,
        "outputs": dims.N * dims.G * dims.M * dims.P * dims.Q,
    }


# ------------------------------------------------------------------------------------------------
# Checkers
# ------------------------------------------------------------------------------------------------
def _get(counts: AccessCounts, level: int, d: str, action: str) -> int:
    return counts.per_instance(level, d, action)


def check_macs(counts: AccessCounts, nest: Nest, arch: Architecture) -> None:
    """MACs performed = the layer's MACs; compute cycles x PEs used = MACs; PEs fit the array."""
    assert counts.macs == nest.dims.macs, f"macs {counts.macs} != layer {nest.dims.macs}"
    assert counts.cycles_compute * counts.pes_used == nest.dims.macs
    assert 1 <= counts.pes_used <= arch.mac_units


def check_reads_cover_partition(counts: AccessCounts, nest: Nest, arch: Architecture) -> None:
    """A level reads every read-only element it serves at least once: reads >= its partition."""
    for d in ("weights", "inputs"):
        for i in arch.levels_keeping(d):
            served = distinct_per_instance(nest, i, d)
            reads = _get(counts, i, d, "reads")
            assert reads >= served, f"{arch.levels[i].name} {d}: reads {reads} < partition {served}"


def check_fills_cover_partition(counts: AccessCounts, nest: Nest, arch: Architecture) -> None:
    """Every level but the outermost holder receives each read-only element it serves at least once;
    the outermost holder is never filled."""
    for d in ("weights", "inputs"):
        holders = arch.levels_keeping(d)
        for position, i in enumerate(holders):
            fills = _get(counts, i, d, "fills")
            if position == 0:
                assert fills == 0, f"{arch.levels[i].name} {d}: outermost holder has fills {fills}"
            else:
                served = distinct_per_instance(nest, i, d)
                assert fills >= served, f"{arch.levels[i].name} {d}: fills {fills} < partition {served}"
            assert _get(counts, i, d, "updates") == 0, f"{arch.levels[i].name} {d}: read-only data updated"


def check_output_first_read_elision(counts: AccessCounts, nest: Nest, arch: Architecture) -> None:
    """Psums: every output an instance serves is written at least once, exactly one read per distinct
    output is elided (updates - reads = partition), and the outermost holder is never filled."""
    holders = arch.levels_keeping("outputs")
    for position, i in enumerate(holders):
        served = distinct_per_instance(nest, i, "outputs")
        reads, fills, updates = (_get(counts, i, "outputs", a) for a in ("reads", "fills", "updates"))
        name = arch.levels[i].name
        assert updates >= served, f"{name} outputs: updates {updates} < partition {served}"
        assert updates - reads == served, f"{name} outputs: updates {updates} - reads {reads} != partition {served}"
        assert fills >= 0 and reads >= 0
        if position == 0:
            assert fills == 0, f"{name} outputs: outermost holder has fills {fills}"


def check_dram_output_writes(counts: AccessCounts, nest: Nest, arch: Architecture) -> None:
    """DRAM is written at least once per output element (the finished layer output lands there)."""
    size = layer_sizes(nest.dims)["outputs"]
    writes = counts.total(0, "outputs", "updates")
    assert writes >= size, f"DRAM output updates {writes} < output size {size}"


def check_parent_child_traffic(counts: AccessCounts, nest: Nest, arch: Architecture) -> None:
    """Between consecutive holders of a data type, multicast and spatial reduction can only save
    traffic: per parent instance, one child's share <= parent traffic <= all children's shares
    (reads for read-only data vs child fills; parent updates vs child drains = child PAS)."""
    for d in DATA_TYPES:
        holders = arch.levels_keeping(d)
        for parent, child in zip(holders, holders[1:]):
            children = int(counts.instances[child] // counts.instances[parent])
            if d == "outputs":
                # child PAS = fills + partition (first loads elided)
                child_share = _get(counts, child, d, "fills") + distinct_per_instance(nest, child, d)
                parent_side = _get(counts, parent, d, "updates")
            else:
                child_share = _get(counts, child, d, "fills")
                parent_side = _get(counts, parent, d, "reads")
            where = f"{arch.levels[parent].name} -> {arch.levels[child].name} {d}"
            assert child_share <= parent_side <= child_share * children, \
                f"{where}: parent {parent_side} not within [{child_share}, {child_share} x {children}]"


def check_energy_is_sum_of_parts(counts: AccessCounts, nest: Nest, arch: Architecture) -> None:
    """Total energy = sum of the table's rows = sum over data-type classes = sum over level classes
    = an independent recomputation instances x ceil(count/B) x E per action, + NoC words x E + MACs x E."""
    table = access_energy(counts, arch)
    parts = energy_breakdown(table)
    total = parts["energy_total"]
    assert math.isclose(total, float(table.energy.sum()), rel_tol=1e-12, abs_tol=1e-9)
    by_type = sum(parts[f"energy_{name}"] for name in DATA_TYPE_CLASSES.values())
    by_level = sum(parts[f"energy_{cls.lower()}"] for cls in LEVEL_CLASSES)
    assert math.isclose(by_type, total, rel_tol=1e-9, abs_tol=1e-9), (by_type, total)
    assert math.isclose(by_level, total, rel_tol=1e-9, abs_tol=1e-9), (by_level, total)
    expected = counts.macs * arch.mac_energy.energy_per_access
    for li, level in enumerate(arch.levels):
        for di, d in enumerate(DATA_TYPES):
            if d in level.keeps:
                for action, entry in (("reads", level.energy_read), ("fills", level.energy_fill),
                                      ("updates", level.energy_update)):
                    per_instance = _get(counts, li, d, action)
                    expected += int(counts.instances[li]) * math.ceil(per_instance / level.block_words) * entry.energy_per_access
            if level.fanout > 1 and level.noc_energy_per_word is not None:
                expected += int(counts.noc[li, di].sum()) * level.noc_energy_per_word.energy_per_access
    assert math.isclose(total, expected, rel_tol=1e-9, abs_tol=1e-9), (total, expected)


CHECKERS = (
    check_macs, check_reads_cover_partition, check_fills_cover_partition, check_output_first_read_elision,
    check_dram_output_writes, check_parent_child_traffic, check_energy_is_sum_of_parts,
)


def check_all(counts: AccessCounts, nest: Nest, arch: Architecture) -> None:
    for checker in CHECKERS:
        checker(counts, nest, arch)


# ------------------------------------------------------------------------------------------------
# Random cases
# ------------------------------------------------------------------------------------------------
@st.composite
def with_random_energies(draw, arch: Architecture) -> Architecture:
    """The architecture with distinct random energies per level and action (so that a wrong sum
    cannot hide behind unit energies)."""
    energy = st.floats(0.01, 100.0, allow_nan=False, allow_infinity=False)

    def entry():
        return EnergyEntry(energy_per_access=draw(energy), source="random")

    levels = tuple(
        dataclasses.replace(level, energy_read=entry(), energy_fill=entry(), energy_update=entry(),
                            noc_energy_per_word=entry() if level.fanout > 1 else None)
        for level in arch.levels
    )
    return dataclasses.replace(arch, levels=levels, mac_energy=entry())


@st.composite
def cases(draw, max_macs: int = 3000):
    dims = draw(layer_dims(max_macs=max_macs))
    arch = draw(with_random_energies(draw(architectures())))
    mapping = draw(mappings(dims, arch))
    return dims, arch, mapping, draw(st.integers(0, 2**31))


def _tensors(dims: LoopDims, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = layer_sizes(dims)
    return (rng.standard_normal(sizes["weights"]).astype(np.float32),
            rng.standard_normal(sizes["inputs"]).astype(np.float32))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_invariants_hold_for_closed_form(case):
    dims, arch, mapping, _ = case
    nest = build_nest(dims, arch, mapping)
    check_all(closed_form_counts(nest, arch), nest, arch)
    # the model's partition size (PS, used for first-read elision) is the brute-force one
    for i, level in enumerate(arch.levels):
        for d in level.keeps:
            assert partition_size(nest, i, d) == distinct_per_instance(nest, i, d), (level.name, d)


@settings(max_examples=max(EXAMPLES // 4, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_macs=1500))
def test_invariants_hold_for_engine(case):
    dims, arch, mapping, seed = case
    nest = build_nest(dims, arch, mapping)
    w, x = _tensors(dims, seed)
    result = run_engine(nest, arch, w, x)
    check_all(result.counts, nest, arch)
    np.testing.assert_allclose(result.outputs, reference_conv(dims, w, x), rtol=1e-4, atol=1e-4)


def test_checkers_catch_broken_counts():
    """Each checker rejects a count that violates its invariant (they are not vacuous)."""
    dims = LoopDims(N=1, G=1, M=2, C=2, P=3, Q=3, R=2, S=2, stride=1, H=4, W=4)
    unit = EnergyEntry(energy_per_access=1.5, source="test")
    arch = Architecture(
        name="tiny", description="", source_file="<test>", clock_mhz=1.0, energy_unit="pJ", counting="exact",
        word_bits={d: 16 for d in DATA_TYPES}, mac_energy=unit,
        levels=(
            StorageLevel(name="DRAM", keeps=DATA_TYPES, capacity_words=None, energy_read=unit,
                         energy_fill=unit, energy_update=unit, block_words=2),
            StorageLevel(name="RF", keeps=DATA_TYPES, capacity_words=None, energy_read=unit, energy_fill=unit,
                         energy_update=unit, fanout_x=2, noc_energy_per_word=unit),
        ),
    )
    nest = build_nest(dims, arch, mapping_from_loops(arch, {
        "DRAM": [("P", 3), ("M", 2, "X")], "RF": [("C", 2), ("Q", 3), ("R", 2), ("S", 2)]}))
    good = closed_form_counts(nest, arch)
    check_all(good, nest, arch)
    rf, dram = 1, 0
    broken = {
        check_macs: lambda c: setattr(c, "macs", c.macs - 1),
        check_reads_cover_partition: lambda c: c.storage.__setitem__((dram, 0, 0), 1),
        check_fills_cover_partition: lambda c: c.storage.__setitem__((rf, 1, 1), 1),
        check_output_first_read_elision: lambda c: c.storage.__setitem__((rf, 2, 0), c.storage[rf, 2, 0] + 1),
        check_dram_output_writes: lambda c: c.storage.__setitem__((dram, 2, 2), 1),
        check_parent_child_traffic: lambda c: c.storage.__setitem__((dram, 1, 0), c.storage[rf, 1, 1] * 2 + 1),
    }
    for checker, corrupt in broken.items():
        counts = dataclasses.replace(good, storage=good.storage.copy())
        corrupt(counts)
        with pytest.raises(AssertionError):
            checker(counts, nest, arch)


# ------------------------------------------------------------------------------------------------
# One compiled kernel serves every configuration
# ------------------------------------------------------------------------------------------------
def _dispatchers() -> dict[str, numba.core.dispatcher.Dispatcher]:
    return {name: obj for name, obj in vars(kernels).items() if isinstance(obj, numba.core.dispatcher.Dispatcher)}


def test_each_kernel_has_one_compiled_signature():
    """Run the engine on three different architectures and mappings (Timeloop preset with a spatial
    array; exact counting with overlap multicast; outputs held only in DRAM), feeding tensors of
    different dtypes and layouts; the engine must coerce them so each numba kernel keeps exactly one
    compiled signature (inline-only helpers at most one: they may be inlined without their own)."""
    dims1 = LoopDims(N=1, G=1, M=4, C=2, P=4, Q=4, R=3, S=3, stride=1, H=6, W=6)
    a1 = load_architecture("eyeriss_like_timeloop")
    m1 = mapping_from_loops(a1, {"DRAM": [("P", 4)], "shared_glb": [("Q", 4, "X"), ("M", 2, "Y"), ("S", 3, "Y")],
                                 "weights_spad": [("R", 3), ("C", 2)], "psum_spad": [("M", 2)]})
    unit = EnergyEntry(energy_per_access=1.0, source="test")

    def level(name, keeps, **kw):
        return StorageLevel(name=name, keeps=keeps, capacity_words=None, energy_read=unit, energy_fill=unit,
                            energy_update=unit, **kw)

    a2 = Architecture(name="overlap_exact", description="", source_file="<test>", clock_mhz=1.0, energy_unit="pJ",
                      counting="exact", word_bits={d: 16 for d in DATA_TYPES}, mac_energy=unit,
                      levels=(level("DRAM", DATA_TYPES), level("GLB", ("inputs", "weights")),
                              level("RF", DATA_TYPES, fanout_x=3, fanout_y=2, multicast="overlap",
                                    noc_energy_per_word=unit)))
    dims2 = LoopDims(N=2, G=1, M=2, C=3, P=3, Q=2, R=2, S=2, stride=2, H=6, W=4)
    m2 = mapping_from_loops(a2, {"DRAM": [("N", 2), ("C", 3)], "GLB": [("P", 3, "X"), ("M", 2, "Y")],
                                 "RF": [("Q", 2), ("R", 2), ("S", 2)]})
    a3 = Architecture(name="outputs_in_dram", description="", source_file="<test>", clock_mhz=1.0,
                      energy_unit="pJ", counting="timeloop", word_bits={d: 16 for d in DATA_TYPES},
                      mac_energy=unit, levels=(level("DRAM", DATA_TYPES), level("RF", ("weights",))))
    dims3 = LoopDims(N=1, G=2, M=2, C=1, P=2, Q=2, R=1, S=3, stride=1, H=2, W=4)
    m3 = mapping_from_loops(a3, {"DRAM": [("G", 2), ("P", 2), ("Q", 2)], "RF": [("M", 2), ("S", 3)]})

    rng = np.random.default_rng(3)
    for dims, arch, mapping, dtype, strided in ((dims1, a1, m1, np.float32, False),
                                               (dims2, a2, m2, np.float64, True),
                                               (dims3, a3, m3, np.int32, False)):
        nest = build_nest(dims, arch, mapping)
        sizes = layer_sizes(dims)
        w = (rng.standard_normal(sizes["weights"]) * 4).astype(dtype)
        x = (rng.standard_normal(sizes["inputs"] * (2 if strided else 1)) * 4).astype(dtype)
        if strided:
            x = x[::2]  # a non-contiguous view
        result = run_engine(nest, arch, w, x)
        assert result.counts.differences(closed_form_counts(nest, arch)) == []
        np.testing.assert_allclose(result.outputs, reference_conv(dims, np.asarray(w, np.float32),
                                                                   np.asarray(x, np.float32)), rtol=1e-4, atol=1e-3)

    dispatchers = _dispatchers()
    assert dispatchers, "sim.kernels has no numba kernels"
    engine_source = open(engine_module.__file__).read()
    called = [name for name in dispatchers if f"kernels.{name}(" in engine_source]
    assert called, "sim.engine calls no kernel of sim.kernels by name"
    for name, kernel in dispatchers.items():
        count = len(kernel.signatures)
        if name in called:
            assert count == 1, f"kernel {name} has {count} compiled signatures: {kernel.signatures}"
        else:
            assert count <= 1, f"helper kernel {name} has {count} compiled signatures: {kernel.signatures}"
