"""Hand-derived access counts for canonical dataflows, checked against the closed form AND the engine.

Every expected number below is written in terms of the layer's dimensions and derived in the test's
docstring from the counting rules of ``sim/model.py`` (tiles, deltas, first-read elision, identical
multicast and spatial reduction per axis). Counts are per instance of a level, as ``AccessCounts``
stores them. Architectures are small and built in Python: DRAM -> GLB (global buffer) -> RF (one
per PE, optionally behind a 2 x 2 fan-out) -> MAC, every level keeping every data type.

Notation: ``span(n, k, st)`` = k + (n - 1) * min(st, k), the number of distinct positions that n
windows of k taps touch when they start ``st`` apart (the sliding-window input extent).
"""
from __future__ import annotations

import numpy as np
import pytest

from networks.layers import LoopDims
from sim.arch import DATA_TYPES, Architecture, EnergyEntry, StorageLevel
from sim.counts import ACTIONS, NOC_ACTIONS
from sim.engine import run_engine
from sim.mapping import build_nest, mapping_from_loops
from sim.model import closed_form_counts
from tests.sim_cases import reference_conv

UNIT = EnergyEntry(energy_per_access=1.0, source="test")


def span(n: int, k: int, st: int) -> int:
    """Distinct positions touched by n windows of k taps whose starts are st apart."""
    return k + (n - 1) * min(st, k)


def conv_dims(*, N=1, G=1, M=1, C=1, P=1, Q=1, R=1, S=1, stride=1) -> LoopDims:
    return LoopDims(N=N, G=G, M=M, C=C, P=P, Q=Q, R=R, S=S, stride=stride,
                    H=(P - 1) * stride + R, W=(Q - 1) * stride + S)


def make_arch(counting: str, *, fanout: tuple[int, int] = (1, 1), multicast: str = "identical") -> Architecture:
    """DRAM -> GLB -> RF -> MAC; every level keeps all three data types; the fan-out (if any) is
    the PE array between GLB and RF."""
    fx, fy = fanout
    spread = fx * fy > 1

    def level(name, capacity, **kw):
        return StorageLevel(name=name, keeps=DATA_TYPES, capacity_words=capacity, block_words=1,
                            energy_read=UNIT, energy_fill=UNIT, energy_update=UNIT, **kw)

    return Architecture(
        name=f"glb_rf_{fx}x{fy}", description="", source_file="<test_closed_forms>", clock_mhz=100.0,
        energy_unit="pJ", counting=counting, word_bits={d: 16 for d in DATA_TYPES},
        levels=(
            level("DRAM", None),
            level("GLB", None),
            level("RF", None, fanout_x=fx, fanout_y=fy, multicast=multicast if spread else "identical",
                  noc_energy_per_word=UNIT if spread else None),
        ),
        mac_energy=UNIT,
    )


def random_tensors(dims: LoopDims, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(dims.G * dims.M * dims.C * dims.R * dims.S).astype(np.float32)
    x = rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W).astype(np.float32)
    return w, x


def check(dims, arch, loops, *, instances, storage, noc=None, seed=0):
    """Assert that the closed form and the engine give exactly ``storage`` (per instance, keyed
    (level, data type) -> (reads, fills, updates); every kept pair must be listed), ``instances``
    (level -> utilised instances) and ``noc`` ((level, data type, action) -> words; unlisted = 0)."""
    nest = build_nest(dims, arch, mapping_from_loops(arch, loops))
    names = [level.name for level in arch.levels]
    want = np.zeros((len(names), len(DATA_TYPES), len(ACTIONS)), np.int64)
    listed = set()
    for (level, d), row in storage.items():
        want[names.index(level), DATA_TYPES.index(d)] = row
        listed.add((level, d))
    kept = {(level.name, d) for level in arch.levels for d in level.keeps}
    assert listed == kept, f"test must list every kept (level, data type); missing {kept - listed}"
    want_noc = np.zeros((len(names), len(DATA_TYPES), len(NOC_ACTIONS)), np.int64)
    for (level, d, action), words in (noc or {}).items():
        want_noc[names.index(level), DATA_TYPES.index(d), NOC_ACTIONS.index(action)] = words
    want_inst = np.array([instances.get(n, 1) for n in names], np.int64)

    w, x = random_tensors(dims, seed)
    engine = run_engine(nest, arch, w, x)
    np.testing.assert_allclose(engine.outputs, reference_conv(dims, w, x), rtol=1e-4, atol=1e-4)
    for source, counts in (("closed form", closed_form_counts(nest, arch)), ("engine", engine.counts)):
        problems = []
        for li, level in enumerate(names):
            if counts.instances[li] != want_inst[li]:
                problems.append(f"{level} instances {counts.instances[li]} (expected {want_inst[li]})")
            for di, d in enumerate(DATA_TYPES):
                for ai, a in enumerate(ACTIONS):
                    if counts.storage[li, di, ai] != want[li, di, ai]:
                        problems.append(f"{level} {d} {a}: got {counts.storage[li, di, ai]}, expected {want[li, di, ai]}")
                for ai, a in enumerate(NOC_ACTIONS):
                    if counts.noc[li, di, ai] != want_noc[li, di, ai]:
                        problems.append(f"noc above {level} {d} {a}: got {counts.noc[li, di, ai]}, expected {want_noc[li, di, ai]}")
        if counts.macs != dims.macs:
            problems.append(f"macs {counts.macs} != {dims.macs}")
        if counts.cycles_compute * counts.pes_used != dims.macs:
            problems.append(f"cycles {counts.cycles_compute} x PEs {counts.pes_used} != MACs {dims.macs}")
        assert not problems, f"{source} ({arch.counting}):\n" + "\n".join(problems) + "\n" + nest.mapping.loop_nest()
    return engine.counts


# ------------------------------------------------------------------------------------------------
# 1. One-dimensional convolution on a single PE
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("counting", ["timeloop", "exact"])
@pytest.mark.parametrize("Q,S,st", [(6, 3, 1), (5, 3, 2), (4, 2, 3), (7, 1, 1), (3, 4, 4)])
def test_1d_conv_one_pe_rf_holds_window(counting, Q, S, st):
    """Q outputs, S taps, stride st. GLB: for q in [0:Q); RF: for s in [0:S) (RF holds all three).

    RF tile: all S weights, an S-wide input window, one output. Q is the only loop above RF, so
    both counting modes keep the overlap.
    - RF reads: one weight, one input per MAC -> Q*S each. Psums: Q*S updates; the first update of
      each of the Q outputs needs no read -> reads Q*S - Q. Output fills: each output tile is new
      (delta 1 per step, PAS = Q = PS) -> 0.
    - RF fills: weights S once (the weight tile never moves). Inputs: first window S, then each q
      step brings min(st, S) new elements -> span(Q, S, st) = S + (Q-1)*min(st, S) (for st <= S this
      is the whole padded input W = (Q-1)*st + S; for st > S, taps skip elements that are never read).
    - GLB (no loops above): fills = its tile = everything touched (S weights, span inputs); reads =
      the RF's fills (single PE, no multicast). Outputs: Q drains = updates; PS = Q -> reads 0.
    - DRAM: reads = GLB fills; output updates = Q, reads 0.
    """
    dims = conv_dims(Q=Q, S=S, stride=st)
    window = span(Q, S, st)
    check(
        dims, make_arch(counting), {"GLB": [("Q", Q)], "RF": [("S", S)]},
        instances={},
        storage={
            ("RF", "weights"): (Q * S, S, 0),
            ("RF", "inputs"): (Q * S, window, 0),
            ("RF", "outputs"): (Q * S - Q, 0, Q * S),
            ("GLB", "weights"): (S, S, 0),
            ("GLB", "inputs"): (window, window, 0),
            ("GLB", "outputs"): (0, 0, Q),
            ("DRAM", "weights"): (S, 0, 0),
            ("DRAM", "inputs"): (window, 0, 0),
            ("DRAM", "outputs"): (0, 0, Q),
        },
    )


@pytest.mark.parametrize("counting", ["timeloop", "exact"])
@pytest.mark.parametrize("Q,S,st", [(4, 3, 1), (3, 2, 2), (5, 4, 1)])
def test_1d_conv_one_pe_psum_spills(counting, Q, S, st):
    """Same layer, loops swapped: GLB: for s in [0:S) for q in [0:Q); RF holds no loop (one weight,
    one input, one psum). Q >= 3 so that the s step always moves the input (its shift 1 - (Q-1)*st
    is non-zero); tiles of one element have no overlap, so both modes agree.
    - RF psum: updates Q*S (per MAC). Each q step moves the psum tile (delta 1), the s step too:
      PAS = Q*S; PS = Q. Fills = PAS - PS = Q*(S-1) (every output comes back S-1 times), reads =
      updates - PS = Q*S - Q.
    - GLB psum: updates = RF drains = PAS = Q*S; reads = Q*S - Q (= the RF's reloads); its own
      tile never moves -> fills 0; DRAM sees Q output updates.
    - RF weights: the tile moves only when s advances -> fills S; inputs move on every step -> Q*S.
    - GLB: weights fills S, reads S; inputs fills span(Q, S, st), reads Q*S (= RF fills).
    """
    dims = conv_dims(Q=Q, S=S, stride=st)
    window = span(Q, S, st)
    check(
        dims, make_arch(counting), {"GLB": [("S", S), ("Q", Q)]},
        instances={},
        storage={
            ("RF", "weights"): (Q * S, S, 0),
            ("RF", "inputs"): (Q * S, Q * S, 0),
            ("RF", "outputs"): (Q * S - Q, Q * (S - 1), Q * S),
            ("GLB", "weights"): (S, S, 0),
            ("GLB", "inputs"): (Q * S, window, 0),
            ("GLB", "outputs"): (Q * S - Q, 0, Q * S),
            ("DRAM", "weights"): (S, 0, 0),
            ("DRAM", "inputs"): (window, 0, 0),
            ("DRAM", "outputs"): (0, 0, Q),
        },
    )


# ------------------------------------------------------------------------------------------------
# 2. Weight-stationary 2 x 2 array
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("counting", ["timeloop", "exact"])
@pytest.mark.parametrize("P,Q,R,S,st", [(3, 4, 2, 3, 1), (2, 3, 1, 1, 1), (2, 3, 3, 2, 2)])
def test_weight_stationary_2x2(counting, P, Q, R, S, st):
    """C = M = 2 spread over a 2 x 2 array: spatial-X C, spatial-Y M. GLB: for p for q; RF: for r
    for s. Each PE pins the R*S weights of its (c, m). (Q-1)*st >= S, so the p step shares nothing
    with the previous window and both modes agree.
    - RF weights: fills R*S once (tile never moves), reads P*Q*R*S.
    - RF inputs: window R x S of channel c; a q step brings R*min(st, S) new elements, a p step a
      whole new window: fills = R*S + P*(Q-1)*R*min(st, S) + (P-1)*R*S.
    - RF psums: updates P*Q*R*S, reads P*Q*R*S - P*Q, fills 0 (each output is finished in place).
    - Multicast: PEs along Y (different m, same c) need the same inputs -> one GLB read serves both:
      GLB input reads = C (distinct X children) x RF input fills. Weights all differ: 4*R*S reads.
    - Reduction: PEs along X (different c, same m) produce partial sums of the same outputs and are
      reduced in the network: GLB output updates = M (distinct Y children) x P*Q = M*P*Q, i.e. half
      of the 4*P*Q words drained; PS = M*P*Q -> GLB output reads 0.
    - NoC above RF, per receiver: weights 4*R*S, inputs 4 x RF input fills, psum drains 4*P*Q.
    """
    C = M = 2
    dims = conv_dims(C=C, M=M, P=P, Q=Q, R=R, S=S, stride=st)
    assert (Q - 1) * st >= S
    macs_pe = P * Q * R * S
    rf_in = R * S + P * (Q - 1) * R * min(st, S) + (P - 1) * R * S
    all_in = C * span(P, R, st) * span(Q, S, st)
    check(
        dims, make_arch(counting, fanout=(2, 2)),
        {"GLB": [("P", P), ("Q", Q), ("C", C, "X"), ("M", M, "Y")], "RF": [("R", R), ("S", S)]},
        instances={"RF": 4},
        storage={
            ("RF", "weights"): (macs_pe, R * S, 0),
            ("RF", "inputs"): (macs_pe, rf_in, 0),
            ("RF", "outputs"): (macs_pe - P * Q, 0, macs_pe),
            ("GLB", "weights"): (C * M * R * S, C * M * R * S, 0),
            ("GLB", "inputs"): (C * rf_in, all_in, 0),
            ("GLB", "outputs"): (0, 0, M * P * Q),
            ("DRAM", "weights"): (C * M * R * S, 0, 0),
            ("DRAM", "inputs"): (all_in, 0, 0),
            ("DRAM", "outputs"): (0, 0, M * P * Q),
        },
        noc={
            ("RF", "weights", "deliveries"): 4 * R * S,
            ("RF", "inputs", "deliveries"): 4 * rf_in,
            ("RF", "outputs", "drains"): 4 * P * Q,
        },
    )


# ------------------------------------------------------------------------------------------------
# 3. Output-stationary 2 x 2 array
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("multicast", ["identical", "overlap"])
@pytest.mark.parametrize("counting", ["timeloop", "exact"])
@pytest.mark.parametrize("M,C,R,S,st", [(3, 2, 3, 3, 1), (2, 1, 2, 3, 2), (2, 2, 1, 1, 1)])
def test_output_stationary_2x2(multicast, counting, M, C, R, S, st):
    """P = Q = 2 spread over the array: spatial-X P, spatial-Y Q. GLB: for m; RF: for c for r for s.
    Each PE owns one output pixel per m and accumulates all C*R*S terms in place.
    - RF psums: updates M*C*R*S, PS = M, reads M*(C*R*S - 1); the psum tile moves only when m
      advances (to a new output) -> PAS = M = PS -> fills 0: a psum never leaves its PE before it is
      final. GLB output updates = 4*M = M*P*Q (no two PEs share an output: nothing to reduce),
      drains 4*M words in total, one per output.
    - RF weights: C*R*S for filter m, a disjoint set at each m step (both modes): fills M*C*R*S.
      All four PEs need the same filter: identical multicast along X and along Y -> GLB weight
      reads M*C*R*S (one read feeds four PEs); NoC deliveries 4*M*C*R*S.
    - RF inputs: one C x R x S window, unchanged by m -> fills C*R*S, reads M*C*R*S.
      The four windows are distinct: with ``identical`` multicast GLB reads 4*C*R*S (overlapping
      parts of neighbouring windows are read once per PE); with ``overlap`` multicast the GLB reads
      the union once: C*span(2, R, st)*span(2, S, st) = its whole input tile.
    """
    P = Q = 2
    dims = conv_dims(M=M, C=C, P=P, Q=Q, R=R, S=S, stride=st)
    crs = C * R * S
    all_in = C * span(P, R, st) * span(Q, S, st)
    glb_in_reads = 4 * crs if multicast == "identical" else all_in
    check(
        dims, make_arch(counting, fanout=(2, 2), multicast=multicast),
        {"GLB": [("M", M), ("P", P, "X"), ("Q", Q, "Y")], "RF": [("C", C), ("R", R), ("S", S)]},
        instances={"RF": 4},
        storage={
            ("RF", "weights"): (M * crs, M * crs, 0),
            ("RF", "inputs"): (M * crs, crs, 0),
            ("RF", "outputs"): (M * (crs - 1), 0, M * crs),
            ("GLB", "weights"): (M * crs, M * crs, 0),
            ("GLB", "inputs"): (glb_in_reads, all_in, 0),
            ("GLB", "outputs"): (0, 0, M * P * Q),
            ("DRAM", "weights"): (M * crs, 0, 0),
            ("DRAM", "inputs"): (all_in, 0, 0),
            ("DRAM", "outputs"): (0, 0, M * P * Q),
        },
        noc={
            ("RF", "weights", "deliveries"): 4 * M * crs,
            ("RF", "inputs", "deliveries"): 4 * crs,
            ("RF", "outputs", "drains"): 4 * M,
        },
    )


@pytest.mark.parametrize("multicast", ["identical", "overlap"])
@pytest.mark.parametrize("counting", ["timeloop", "exact"])
@pytest.mark.parametrize("P,fanout,M,C,R,S,st", [(3, (2, 2), 2, 2, 3, 3, 1), (5, (3, 2), 2, 1, 2, 3, 2)])
def test_output_stationary_with_a_spatial_remainder(multicast, counting, P, fanout, M, C, R, S, st):
    """The output-stationary array with P output rows folded onto a fan-out that has more PEs than
    rows: spatial-Y P (outer, the fewest segments) x spatial-X P (the columns), p = y * cols + x;
    the PEs with p >= P are idle (a spatial remainder). Q = 1. The P utilised PEs each own one
    output row per m, so every count is the 2 x 2 derivation above with P PEs instead of four:
    - RF psums: updates M*C*R*S, reads M*(C*R*S - 1), fills 0; GLB output updates M*P (nothing to
      reduce), drains P*M words in all.
    - RF weights: fills = reads = M*C*R*S; all PEs need the same filter: GLB weight reads
      M*C*R*S, NoC deliveries P*M*C*R*S (idle PEs receive nothing).
    - RF inputs: one C x R x S window: fills C*R*S, reads M*C*R*S; GLB input reads P*C*R*S with
      ``identical`` multicast, the union C*span(P, R, st)*S with ``overlap``; the GLB, and DRAM,
      hold only the rows the P utilised windows touch (not those of the idle PEs' rows).
    """
    cols = fanout[0]
    dims = conv_dims(M=M, C=C, P=P, R=R, S=S, stride=st)
    crs = C * R * S
    all_in = C * span(P, R, st) * S
    glb_in_reads = P * crs if multicast == "identical" else all_in
    check(
        dims, make_arch(counting, fanout=fanout, multicast=multicast),
        {"GLB": [("M", M), ("P", -(-P // cols), "Y"), ("P", cols, "X")], "RF": [("C", C), ("R", R), ("S", S)]},
        instances={"RF": P},
        storage={
            ("RF", "weights"): (M * crs, M * crs, 0),
            ("RF", "inputs"): (M * crs, crs, 0),
            ("RF", "outputs"): (M * (crs - 1), 0, M * crs),
            ("GLB", "weights"): (M * crs, M * crs, 0),
            ("GLB", "inputs"): (glb_in_reads, all_in, 0),
            ("GLB", "outputs"): (0, 0, M * P),
            ("DRAM", "weights"): (M * crs, 0, 0),
            ("DRAM", "inputs"): (all_in, 0, 0),
            ("DRAM", "outputs"): (0, 0, M * P),
        },
        noc={
            ("RF", "weights", "deliveries"): P * M * crs,
            ("RF", "inputs", "deliveries"): P * crs,
            ("RF", "outputs", "drains"): P * M,
        },
    )


@pytest.mark.parametrize("multicast", ["identical", "overlap"])
@pytest.mark.parametrize("counting", ["timeloop", "exact"])
@pytest.mark.parametrize("P,k,M,C,R,S,st", [(7, 3, 2, 2, 3, 2, 1), (5, 2, 3, 2, 3, 3, 2), (8, 3, 2, 1, 1, 1, 1)])
def test_output_stationary_with_a_temporal_remainder(multicast, counting, P, k, M, C, R, S, st):
    """P output rows in passes of k over a 1 x k array: DRAM for p in ceil(P/k) (the nest's outermost
    loop, over-covering P), GLB for m, spatial-X p in k, RF for c, r, s (Q = 1). The layer runs as
    the b - 1 = ceil(P/k) - 1 full passes (P_A = (b - 1) * k rows), then a remainder pass of
    P - P_A rows on that many PEs, which starts cold. Totals over all instances:
    - every output row is computed once by one PE: RF psum updates P*M*C*R*S, reads P*M*(C*R*S - 1);
      RF weight fills = reads = P*M*C*R*S; RF input fills P*C*R*S (one window per row), reads
      P*M*C*R*S; GLB and DRAM output updates M*P; NoC: weights P*M*C*R*S, inputs P*C*R*S delivered,
      P*M outputs drained.
    - the GLB's filters do not depend on p: fetched once per part, 2*M*C*R*S fills (and DRAM
      reads); one GLB read feeds all PEs of a pass: M*C*R*S per pass, b*M*C*R*S (M >= 2: each PE's
      filter changes with m inside every pass, so nothing stays in the RF across passes).
    - GLB input rows: the passes of a part slide over the ifmap and keep their overlap (the DRAM p
      loop is the only one moving the tile), so each part fetches the rows it touches once:
      C*S*(span(P_A, R, st) + span(P - P_A, R, st)) fills (and DRAM reads). GLB input reads:
      ``identical`` one window per PE and pass, P*C*R*S; ``overlap`` the union per pass,
      C*S*span(rows of the pass, R, st).
    """
    dims = conv_dims(M=M, C=C, P=P, R=R, S=S, stride=st)
    arch = make_arch(counting, fanout=(k, 1), multicast=multicast)
    b = -(-P // k)
    p_full, p_last = (b - 1) * k, P - (b - 1) * k
    crs = C * R * S
    glb_in_fills = C * S * (span(p_full, R, st) + span(p_last, R, st))
    glb_in_reads = P * crs if multicast == "identical" else C * S * ((b - 1) * span(k, R, st) + span(p_last, R, st))
    want = {
        ("RF", "weights"): (P * M * crs, P * M * crs, 0),
        ("RF", "inputs"): (P * M * crs, P * crs, 0),
        ("RF", "outputs"): (P * M * (crs - 1), 0, P * M * crs),
        ("GLB", "weights"): (b * M * crs, 2 * M * crs, 0),
        ("GLB", "inputs"): (glb_in_reads, glb_in_fills, 0),
        ("GLB", "outputs"): (0, 0, M * P),
        ("DRAM", "weights"): (2 * M * crs, 0, 0),
        ("DRAM", "inputs"): (glb_in_fills, 0, 0),
        ("DRAM", "outputs"): (0, 0, M * P),
    }
    nest = build_nest(dims, arch, mapping_from_loops(
        arch, {"DRAM": [("P", b)], "GLB": [("M", M), ("P", k, "X")], "RF": [("C", C), ("R", R), ("S", S)]}))
    assert [(part.dims.P, first) for part, _, first in nest.parts] == [(p_full, 0), (p_last, p_full)]
    w, x = random_tensors(dims, 0)
    engine = run_engine(nest, arch, w, x)
    np.testing.assert_allclose(engine.outputs, reference_conv(dims, w, x), rtol=1e-4, atol=1e-4)
    names = [level.name for level in arch.levels]
    for source, counts in (("closed form", closed_form_counts(nest, arch)), ("engine", engine.counts)):
        got = {(level, d): tuple(int(v) for v in counts.totals()[names.index(level), DATA_TYPES.index(d)])
               for level, d in want}
        assert got == want, source
        noc = counts.noc[names.index("RF")]
        assert (noc[0, 0], noc[1, 0], noc[2, 1]) == (P * M * crs, P * crs, P * M), source
        assert counts.macs == dims.macs and counts.pes_used == k and counts.instances[names.index("RF")] == k
        assert counts.cycles_compute == b * M * crs  # each pass: M*C*R*S steps


@pytest.mark.parametrize("loops, problem", [
    # a temporal loop over P above the spatial remainder, not the nest's outermost loop (M is)
    ({"DRAM": [("M", 2), ("P", 2)], "GLB": [("P", 2, "X")]}, "outermost loop is temporal"),
    # the loops inside the spatial ones (2) do not divide P = 3
    ({"GLB": [("P", 2, "X")], "RF": [("P", 2)]}, "does not divide 3"),
    # the outer spatial loop's last value addresses only idle PEs: 3 x 2 covers 3 twice over
    ({"GLB": [("P", 3, "Y"), ("P", 2, "X")]}, "would leave every PE it addresses idle"),
    # temporal remainder: more passes than needed (3 x 2 for P = 3)
    ({"DRAM": [("P", 3)], "GLB": [("P", 2, "X")]}, r"fewest passes that cover P: ceil\(3 / 2\) = 2, not 3"),
    # temporal remainder whose remainder pass is not a valid mapping (P = 5 as 2 x 2 x 2: the last
    # pass covers 1 row with X 1 x RF 2, and that RF loop over-covers it as a second remainder)
    ({"DRAM": [("P", 2)], "GLB": [("P", 2, "X")], "RF": [("P", 2)]}, "remainder pass"),
])
def test_invalid_remainders_name_the_rule(loops, problem):
    from sim.mapping import MappingError

    P = 5 if problem == "remainder pass" else 3
    dims = conv_dims(P=P, M=2 if any(loop[0] == "M" for level in loops.values() for loop in level) else 1)
    arch = make_arch("exact", fanout=(2, 3))
    full = {"DRAM": [], "GLB": [], "RF": [], **loops}
    with pytest.raises(MappingError, match=rf"loops over P multiply to \d+ but the layer has P={P}; .*{problem}"):
        build_nest(dims, arch, mapping_from_loops(arch, full))


# ------------------------------------------------------------------------------------------------
# 4. Fully-connected layer
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("counting", ["timeloop", "exact"])
@pytest.mark.parametrize("N,M,C", [(3, 4, 5), (2, 2, 1), (4, 3, 2)])
def test_fc_batch_outer(counting, N, M, C):
    """FC: M outputs from C inputs (P = Q = R = S = 1), batch N. GLB: for n for m; RF: for c.
    No convolutional reuse: the RF's weight tile (row m, C weights) is a new row at every m step and
    the n step goes back to row 0 (disjoint, M >= 2), so every weight is fetched into the RF once per
    batch element: RF weight fills N*M*C = the MAC count. The input vector (C words of sample n)
    stays while m runs -> fills N*C. Psums: one per (n, m), C updates each -> reads N*M*(C-1), no
    reloads. GLB: weight fills M*C, reads N*M*C; inputs N*C both; N*M output updates.
    """
    dims = conv_dims(N=N, M=M, C=C)
    check(
        dims, make_arch(counting), {"GLB": [("N", N), ("M", M)], "RF": [("C", C)]},
        instances={},
        storage={
            ("RF", "weights"): (N * M * C, N * M * C, 0),
            ("RF", "inputs"): (N * M * C, N * C, 0),
            ("RF", "outputs"): (N * M * (C - 1), 0, N * M * C),
            ("GLB", "weights"): (N * M * C, M * C, 0),
            ("GLB", "inputs"): (N * C, N * C, 0),
            ("GLB", "outputs"): (0, 0, N * M),
            ("DRAM", "weights"): (M * C, 0, 0),
            ("DRAM", "inputs"): (N * C, 0, 0),
            ("DRAM", "outputs"): (0, 0, N * M),
        },
    )


@pytest.mark.parametrize("counting", ["timeloop", "exact"])
@pytest.mark.parametrize("N,M,C", [(3, 4, 5), (2, 1, 3)])
def test_fc_batch_inner(counting, N, M, C):
    """Same FC layer, GLB: for m for n (batch innermost). Now the weight row stays while n runs:
    RF weight fills M*C (each weight fetched once, used N times in place), and the input vector is
    refetched for every row: RF input fills N*M*C (N >= 2), GLB input reads N*M*C, fills N*C."""
    dims = conv_dims(N=N, M=M, C=C)
    check(
        dims, make_arch(counting), {"GLB": [("M", M), ("N", N)], "RF": [("C", C)]},
        instances={},
        storage={
            ("RF", "weights"): (N * M * C, M * C, 0),
            ("RF", "inputs"): (N * M * C, N * M * C, 0),
            ("RF", "outputs"): (N * M * (C - 1), 0, N * M * C),
            ("GLB", "weights"): (M * C, M * C, 0),
            ("GLB", "inputs"): (N * M * C, N * C, 0),
            ("GLB", "outputs"): (0, 0, N * M),
            ("DRAM", "weights"): (M * C, 0, 0),
            ("DRAM", "inputs"): (N * C, 0, 0),
            ("DRAM", "outputs"): (0, 0, N * M),
        },
    )


# ------------------------------------------------------------------------------------------------
# 5. Grouped convolution
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("C,P,Q,R,S,st", [(2, 2, 3, 2, 2, 1), (1, 3, 2, 3, 3, 2), (3, 2, 2, 1, 2, 1)])
def test_grouped_conv_2x2(C, P, Q, R, S, st):
    """G = 2 groups of M = 2 filters, C channels per group (MACs = G*M*C*P*Q*R*S: a filter sees only
    its group's C channels). Spatial-X G, spatial-Y M; GLB: for p for q; RF: for c for r for s.
    Timeloop counting (the p step refetches the whole window).
    - RF weights: C*R*S pinned; RF inputs: window C x R x S of its group:
      fills = C*R*S + P*(Q-1)*C*R*min(st, S) + (P-1)*C*R*S; psums as in the weight-stationary case
      but no reduction: updates P*Q*C*R*S, reads P*Q*(C*R*S - 1).
    - Groups share nothing: PEs along X (different g) need disjoint inputs and weights, so inputs are
      multicast only along Y (same g, different m): GLB input reads = G x RF input fills; weights are
      all distinct: GLB weight reads G*M*C*R*S = every weight once; outputs of different PEs are
      different -> GLB output updates G*M*P*Q (one per output, no reduction).
    - GLB/DRAM input footprint: G*C*span(P, R, st)*span(Q, S, st) (each group its own channels).
    """
    G = M = 2
    dims = conv_dims(G=G, M=M, C=C, P=P, Q=Q, R=R, S=S, stride=st)
    assert dims.macs == G * M * C * P * Q * R * S
    crs = C * R * S
    rf_in = crs + P * (Q - 1) * C * R * min(st, S) + (P - 1) * crs
    all_in = G * C * span(P, R, st) * span(Q, S, st)
    check(
        dims, make_arch("timeloop", fanout=(2, 2)),
        {"GLB": [("P", P), ("Q", Q), ("G", G, "X"), ("M", M, "Y")], "RF": [("C", C), ("R", R), ("S", S)]},
        instances={"RF": 4},
        storage={
            ("RF", "weights"): (P * Q * crs, crs, 0),
            ("RF", "inputs"): (P * Q * crs, rf_in, 0),
            ("RF", "outputs"): (P * Q * (crs - 1), 0, P * Q * crs),
            ("GLB", "weights"): (G * M * crs, G * M * crs, 0),
            ("GLB", "inputs"): (G * rf_in, all_in, 0),
            ("GLB", "outputs"): (0, 0, G * M * P * Q),
            ("DRAM", "weights"): (G * M * crs, 0, 0),
            ("DRAM", "inputs"): (all_in, 0, 0),
            ("DRAM", "outputs"): (0, 0, G * M * P * Q),
        },
        noc={
            ("RF", "weights", "deliveries"): 4 * crs,
            ("RF", "inputs", "deliveries"): 4 * rf_in,
            ("RF", "outputs", "drains"): 4 * P * Q,
        },
    )


# ------------------------------------------------------------------------------------------------
# 6. The two counting modes
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("counting", ["timeloop", "exact"])
@pytest.mark.parametrize("M,Q,S,st", [(2, 4, 3, 1), (3, 5, 3, 2), (2, 3, 2, 3), (1, 4, 3, 1)])
def test_counting_modes_sliding_window_under_irrelevant_loop(counting, M, Q, S, st):
    """1-D conv with M filters. GLB: for q in [0:Q) for m in [0:M); RF: for s in [0:S).
    Above the RF, the innermost loop m is irrelevant to inputs (the window stays), the outer loop q
    slides it by st.
    - exact: the q step fetches only its new elements: RF input fills = S + (Q-1)*min(st, S)
      = span(Q, S, st).
    - timeloop: only the innermost loop above a level keeps the overlap; q is not innermost, so each
      q step refetches the whole window: RF input fills = Q*S.
    They differ when st < S and M >= 2; with M = 1 the m loop vanishes, q becomes innermost and
    both give span(Q, S, st). GLB input reads = RF input fills (one PE); everything else is
    mode-independent: weights (S per filter, a new filter each m step, the q step jumps back by
    M-1 filters, disjoint) -> RF weight fills Q*M*S (with M = 1 the single filter stays: S);
    psums one per (m, q), S updates each.
    """
    dims = conv_dims(M=M, Q=Q, S=S, stride=st)
    window = span(Q, S, st)
    rf_in = Q * S if (counting == "timeloop" and M > 1) else window
    macs = M * Q * S
    rf_w = macs if M > 1 else S
    check(
        dims, make_arch(counting), {"GLB": [("Q", Q), ("M", M)], "RF": [("S", S)]},
        instances={},
        storage={
            ("RF", "weights"): (macs, rf_w, 0),
            ("RF", "inputs"): (macs, rf_in, 0),
            ("RF", "outputs"): (macs - M * Q, 0, macs),
            ("GLB", "weights"): (rf_w, M * S, 0),
            ("GLB", "inputs"): (rf_in, window, 0),
            ("GLB", "outputs"): (0, 0, M * Q),
            ("DRAM", "weights"): (M * S, 0, 0),
            ("DRAM", "inputs"): (window, 0, 0),
            ("DRAM", "outputs"): (0, 0, M * Q),
        },
    )
    if M > 1 and st < S:
        assert Q * S > window  # the modes really differ on this case
