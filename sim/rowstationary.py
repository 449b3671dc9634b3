"""Eyeriss's row-stationary (RS) dataflow as mappings of the ``eyeriss_v1`` architecture.

The chip papers (Chen et al., ISCA 2016 and JSSC 2017) describe an RS mapping by seven integers:

====  ==========================================================================================
m     ofmap channels whose partial sums the global buffer keeps while all input channels stream
n     ifmaps (batch elements) processed per pass
e     width of a PE set: ofmap rows (of P, the paper's E) computed side by side
p     filters interleaved in each PE (psums per PE)
q     input channels interleaved in each PE
r     PE sets working on different input channels (their psums are added up)
t     PE sets working on different filters
====  ==========================================================================================

A PE set is R filter rows (PE rows) by e ofmap rows (PE columns); PE (y, x) convolves filter row y
with ifmap row x * stride + y, so filter rows are reused across a PE row, ifmap rows diagonally and
partial sums are added up a PE column. Active PEs = R x e x r x t.

How the parameters become loops (levels of ``eyeriss_v1``, outer to inner)::

    DRAM           for G; for N in N/n; for P in ceil(P/e); for M in M/m; for C in C/(q*r)
    global_buffer  for M in m/(p*t); for N in n; for Q in Q      (Q innermost: the ifmap spad
                   spatial (the PE array, 14 X x 12 Y):           slides along the ofmap width)
                     Y: M t_y, C r_y, P k, R        X: M t_x, C r_x, P e/k
    ifmap_spad     (none)
    filter_spad    for C in q; for S in S
    psum_spad      for M in p

so the per-PE tiles are the chip's scratchpad contents: filter spad p*q*S words (p filters x q
channels x one filter row), ifmap spad q*S (a sliding window of q ifmap rows), psum spad p. The
global buffer holds m*q*r*R*S filter words, the n x (q*r) ifmap rows of one pass and the
n x m x e x Q partial sums of the m kept ofmap channels (the ``glb_*_kB`` columns of JSSC17's
AlexNet table are these tiles). With C innermost at DRAM the kept partial sums stay in the buffer
while all channels stream through, and each ofmap is written to DRAM once.

Placement: filter rows R go down Y. A set wider than the 14 columns (e > 14) is strip-mined into
k equal segments of e/k columns stacked on Y (the smallest k that fits). When no equal split fits,
into the fewest segments of at most 14 columns, all as wide as the first, the last one's spare PEs
idle (the chip's CONV2: 27 = 14 + 13); that is a spatial remainder (``sim.mapping``), which needs the
set to span the ofmap height (e = E).
The t filter sets and r channel sets then go to whichever axis has room (as many on Y as fit, the
rest on X): AlexNet CONV1 (R=11, e=7, t=2) puts t across X, CONV3 (R=3, e=13, t=4) stacks t on Y.

When e does not divide E (the chip's CONV1: 55 ofmap rows in passes of e = 7), the passes over P
are a temporal remainder (``sim.mapping``): that loop moves to the front of the DRAM loops (it must
be the nest's outermost loop), the full passes run first, then a last pass of E mod e rows on that
many PE columns, which starts cold. With C innermost at DRAM every pass refetches its filters and
ifmap rows anyway, so moving the P loop outwards changes no count when C/(q*r) > 1.

Limitation: the other parameters must divide their dimensions (q*r divides C, p*t divides m divides
M, n divides N); :class:`RowStationaryError` says which parameter fails and why. The default search
(:func:`default_row_stationary`) considers only e dividing E.

Public API::

    RowStationaryParams(m=, n=, e=, p=, q=, r=, t=)         # frozen; .active_pes(dims)
    row_stationary_mapping(dims, arch, *, m, n, e, p, q, r, t, layer_name) -> Mapping
    default_row_stationary(dims, arch, layer_name) -> RowStationaryChoice   # best valid params
    nearest_row_stationary(dims, arch, target, layer_name) -> RowStationaryChoice
    RowStationaryError (a MappingError with .layer, .parameter, .value)
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

from networks.layers import LoopDims
from sim.arch import DATA_TYPES, Architecture
from sim.mapping import Mapping, MappingError, build_nest, mapping_from_loops
from sim.model import closed_form_counts, tile_words

# The storage levels the RS translation is written for, outer to inner (hwconfigs/eyeriss_v1.toml).
RS_LEVELS = ("DRAM", "global_buffer", "ifmap_spad", "filter_spad", "psum_spad")
PARAMETERS = ("m", "n", "e", "p", "q", "r", "t")


class RowStationaryError(MappingError):
    """RS parameters that cannot be expressed as a mapping of the architecture.

    The message names the layer, the parameter, its value, why it fails and what would work; the
    same facts are attributes: ``layer``, ``parameter`` (one of ``PARAMETERS``, ``"arch"`` or
    ``"layer"``) and ``value``.
    """

    def __init__(self, message: str, *, layer: str, parameter: str, value: object) -> None:
        super().__init__(message)
        self.layer = layer
        self.parameter = parameter
        self.value = value


@dataclass(frozen=True, kw_only=True)
class RowStationaryParams:
    """The seven RS mapping parameters of the Eyeriss papers (see the module docstring)."""

    m: int
    n: int
    e: int
    p: int
    q: int
    r: int
    t: int

    def active_pes(self, dims: LoopDims) -> int:
        """PEs doing work: R x e x r x t."""
        return dims.R * self.e * self.r * self.t

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.as_dict().items())


@dataclass(frozen=True, kw_only=True)
class RowStationaryChoice:
    """Parameters picked by a search, the mapping they give and the figures they were ranked by."""

    params: RowStationaryParams
    mapping: Mapping
    active_pes: int
    dram_words: int  # reads + fills + updates at DRAM, all data types (closed form)
    glb_words: int  # reads + fills + updates at the global buffer, all data types (closed form)


@dataclass(frozen=True)
class _Placement:
    """Spatial loops of one PE-array configuration, each as (dim, bound, axis)."""

    fold: int  # segments a set wider than the array is strip-mined into (stacked on Y)
    width: int  # PE columns of a segment (the last one may use fewer: a spatial remainder)
    t_y: int
    r_y: int

    def loops(self, dims: LoopDims, params: RowStationaryParams) -> list[tuple[str, int, str]]:
        t_x, r_x = params.t // self.t_y, params.r // self.r_y
        y = [("M", self.t_y, "Y"), ("C", self.r_y, "Y"), ("P", self.fold, "Y"), ("R", dims.R, "Y")]
        x = [("M", t_x, "X"), ("C", r_x, "X"), ("P", self.width, "X")]
        return [loop for loop in (*y, *x) if loop[1] > 1]


def _divisors(value: int) -> list[int]:
    return [d for d in range(1, value + 1) if value % d == 0]


def _fail(layer: str, parameter: str, value: object, why: str) -> RowStationaryError:
    shown = f"{parameter} {value!r}" if parameter in ("arch", "layer") else f"{parameter}={value}"
    return RowStationaryError(f"layer {layer!r}: row-stationary {shown}: {why}",
                              layer=layer, parameter=parameter, value=value)


def _check_arch(arch: Architecture, layer: str) -> None:
    names = tuple(level.name for level in arch.levels)
    if names != RS_LEVELS:
        raise _fail(layer, "arch", arch.name,
                    f"the row-stationary translation needs the levels {list(RS_LEVELS)} "
                    f"(hwconfigs/eyeriss_v1.toml), this architecture has {list(names)}")
    array = arch.levels[RS_LEVELS.index("ifmap_spad")]
    if array.fanout == 1:
        raise _fail(layer, "arch", arch.name, "level 'ifmap_spad' has no fan-out; the PE array "
                    "must fan out above the per-PE scratchpads")


def _spad_capacity(arch: Architecture, name: str) -> float:
    capacity = arch.levels[arch.level_index(name)].capacity_words
    return capacity if capacity is not None else math.inf


def _parameter_problems(dims: LoopDims, arch: Architecture, params: RowStationaryParams) -> list[tuple[str, str]]:
    """Every scratchpad and divisibility rule the parameters break, as (parameter, why); the
    scratchpad limits first (the papers' p*q*S <= 224, q*S <= 12, p <= 24 for eyeriss_v1)."""
    problems: list[tuple[str, str]] = []
    for name, value in params.as_dict().items():
        if type(value) is not int or value < 1:
            problems.append((name, "must be an integer >= 1"))
    if problems:
        return problems
    m, n, e, p, q, r, t = (getattr(params, k) for k in PARAMETERS)
    ifmap, filt, psum = (_spad_capacity(arch, name) for name in ("ifmap_spad", "filter_spad", "psum_spad"))
    if q * dims.S > ifmap:
        problems.append(("q", f"the ifmap spad tile q*S = {q}*{dims.S} = {q * dims.S} words "
                              f"exceeds its {ifmap} words"))
    if p * q * dims.S > filt:
        problems.append(("p", f"the filter spad tile p*q*S = {p}*{q}*{dims.S} = "
                              f"{p * q * dims.S} words exceeds its {filt} words"))
    if p > psum:
        problems.append(("p", f"the psum spad tile p = {p} words exceeds its {psum} words"))
    imperfect = "the row-stationary translation splits only E unevenly"
    if dims.N % n:
        problems.append(("n", f"does not divide the batch N={dims.N}; {imperfect} "
                              f"(divisors: {_divisors(dims.N)})"))
    if e > dims.P:
        problems.append(("e", f"exceeds E={dims.P} (ofmap height P): a PE set computes at most E rows"))
    if dims.C % (q * r):
        problems.append(("q", f"q*r = {q * r} does not divide C={dims.C} (input channels per "
                              f"group); {imperfect}"))
    if m % (p * t):
        problems.append(("m", f"is not a multiple of p*t = {p * t} (the filters of one pass); "
                              f"{imperfect}"))
    if dims.M % m:
        problems.append(("m", f"does not divide M={dims.M} (ofmap channels per group); "
                              f"{imperfect} (divisors: {_divisors(dims.M)})"))
    return problems


def _placement(dims: LoopDims, arch: Architecture,
               params: RowStationaryParams) -> _Placement | tuple[str, int, str]:
    """Where the PE sets go on the array, or (parameter, value, why) when they do not fit."""
    array = arch.levels[RS_LEVELS.index("ifmap_spad")]
    cols, rows = array.fanout_x, array.fanout_y
    e = params.e
    if dims.R > rows:
        return ("R", dims.R, f"the filter has more rows than the array's {rows} PE rows; "
                             "row-stationary keeps one filter row per PE row")
    folds = [k for k in _divisors(e) if e // k <= cols]
    fold = folds[0] if folds else None
    width = e // fold if fold else None
    if fold is None or dims.R * fold > rows:  # only when e > cols: fold 1 fits otherwise
        # Unequal segments (the chip's CONV2: 27 columns as 14 + 13): the fewest segments of at
        # most ``cols`` columns, all as wide as the first; the last one's spare PEs idle (a spatial
        # remainder, which needs the set to span the whole ofmap height: e = E).
        unequal = -(-e // cols)
        if dims.R * unequal <= rows and e == dims.P:
            fold, width = unequal, -(-e // unequal)
        else:
            why = (f"{unequal} unequal segments need {dims.R * unequal} rows" if dims.R * unequal > rows
                   else f"unequal segments leave PEs idle, which needs e = E = {dims.P}")
            return ("e", e, f"a PE set {e} ofmap rows wide does not fit the {cols} PE columns and cannot "
                         f"be strip-mined into segments of at most {cols} columns stacked on the "
                         f"{rows} PE rows (R={dims.R} rows per segment"
                         + (f"; {fold} equal segments of {e // fold} need {dims.R * fold} rows" if fold else "")
                         + f"; {why})")
    room_y = rows // (dims.R * fold)
    room_x = cols // width
    for t_y in sorted(_divisors(params.t), reverse=True):
        for r_y in sorted(_divisors(params.r), reverse=True):
            if t_y * r_y <= room_y and (params.t // t_y) * (params.r // r_y) <= room_x:
                return _Placement(fold=fold, width=width, t_y=t_y, r_y=r_y)
    return ("t", params.t, f"r*t = {params.r}*{params.t} PE sets of {dims.R * fold} x {width} PEs do not "
                 f"fit the {rows} x {cols} array (room for {room_y} sets on Y x {room_x} on X)")


def _nontrivial(loops: list[tuple]) -> list[tuple]:
    """The loops with a bound above 1 (a bound-1 loop changes nothing)."""
    return [loop for loop in loops if loop[1] > 1]


def _loops(dims: LoopDims, params: RowStationaryParams, placement: _Placement) -> dict[str, list[tuple]]:
    m, n, e, p, q, r, t = (getattr(params, k) for k in PARAMETERS)
    dram = [("G", dims.G), ("N", dims.N // n), ("P", -(-dims.P // e)), ("M", dims.M // m), ("C", dims.C // (q * r))]
    if dims.P % e:  # a temporal remainder must be the nest's outermost loop: the last pass runs last
        dram.insert(0, dram.pop(2))
    return {
        "DRAM": _nontrivial(dram),
        "global_buffer": _nontrivial([("M", m // (p * t)), ("N", n), ("Q", dims.Q)])
                         + placement.loops(dims, params),
        "ifmap_spad": [],
        "filter_spad": _nontrivial([("C", q), ("S", dims.S)]),
        "psum_spad": _nontrivial([("M", p)]),
    }


def buffer_filter_words(nest) -> int:
    """Words of the global buffer's filter tile (the m filters of a pass over q*r channels; a nest
    run in parts: its largest part's)."""
    index = RS_LEVELS.index("global_buffer")
    return max(tile_words(part, index, "weights") for part in [p for p, _, _ in nest.parts] or [nest])


def _check_streamed_filters(dims: LoopDims, arch: Architecture, params: RowStationaryParams,
                            mapping: Mapping, layer_name: str) -> None:
    """Capacities when the global buffer streams filters one processing pass at a time: its filter
    partition must hold a pass's p*t*q*r*R*S words; every other tile is checked as usual."""
    index = RS_LEVELS.index("global_buffer")
    glb = arch.levels[index]
    partition = glb.partition_words.get("weights")
    pass_words = params.p * params.t * params.q * params.r * dims.R * dims.S
    if partition is None:
        raise _fail(layer_name, "arch", arch.name, "streaming filters needs a weights partition in the "
                    "global buffer (partition_words)")
    if pass_words > partition:
        raise _fail(layer_name, "p", params.p, f"one processing pass's filters, p*t*q*r*R*S = "
                    f"{params.p}*{params.t}*{params.q}*{params.r}*{dims.R}*{dims.S} = {pass_words} "
                    f"words, exceed the global buffer's filter partition of {partition} words")
    nest = build_nest(dims, arch, mapping, layer_name=layer_name, check_capacity_fit=False)
    whole = buffer_filter_words(nest)
    if whole > partition:
        # Streaming evicts each pass's filters; the counts assume the buffer keeps its tile across
        # DRAM steps, so they agree only if the tile changes at every DRAM step anyway.
        dram = [l for l in nest.loops_within(0) if l.level == 0 and l.axis is None and l.bound > 1]
        if dram and dram[-1].dim not in ("G", "M", "C"):
            raise _fail(layer_name, "m", params.m, f"streaming the m filters ({whole} words, over the "
                        f"{partition}-word partition) would refetch them at every DRAM step, but the "
                        f"innermost DRAM loop ({dram[-1].dim}) keeps them in the buffer's tile: lower m")
    room = max(whole, partition)
    roomy = dataclasses.replace(glb, partition_words={**glb.partition_words, "weights": room},
                                capacity_words=glb.capacity_words + room - partition)
    relaxed = dataclasses.replace(arch, levels=tuple(roomy if i == index else level
                                                     for i, level in enumerate(arch.levels)))
    build_nest(dims, relaxed, mapping, layer_name=layer_name)


def _build(dims: LoopDims, arch: Architecture, params: RowStationaryParams, layer_name: str,
           stream_filters: bool = False) -> Mapping:
    _check_arch(arch, layer_name)
    problems = _parameter_problems(dims, arch, params)
    if problems:
        parameter, why = problems[0]
        more = "".join(f"; also {k}={getattr(params, k)}: {w}" for k, w in problems[1:])
        raise _fail(layer_name, parameter, getattr(params, parameter), why + more)
    placement = _placement(dims, arch, params)
    if isinstance(placement, tuple):
        raise _fail(layer_name, *placement)
    mapping = mapping_from_loops(arch, _loops(dims, params, placement),
                                 source=f"row_stationary({params})")
    try:
        if stream_filters:
            _check_streamed_filters(dims, arch, params, mapping, layer_name)
        else:
            build_nest(dims, arch, mapping, layer_name=layer_name)
    except RowStationaryError:
        raise
    except MappingError as exc:  # the global buffer's capacity: name a parameter that sizes it
        parameter = "m" if params.m > params.p * params.t else "n" if params.n > 1 else "e"
        raise _fail(layer_name, parameter, getattr(params, parameter),
                    f"the tiles do not fit ({exc}); the buffer holds m*q*r*R*S filter words, the "
                    "n x q*r ifmap channels of the pass's rows and n*m*e*Q psums: lower m (down "
                    "to p*t), n, e or q*r"
                    + ("" if stream_filters else ", or stream the filters one processing pass at a "
                       "time as the chip does (stream_filters=True)")) from None
    return mapping


def row_stationary_mapping(dims: LoopDims, arch: Architecture, *, m: int, n: int, e: int, p: int,
                           q: int, r: int, t: int, layer_name: str, stream_filters: bool = False) -> Mapping:
    """The ``eyeriss_v1`` mapping of the RS parameters (loops in the module docstring), validated
    with ``build_nest`` (factorisation and capacities). Raises :class:`RowStationaryError` naming
    the layer, the parameter and its value when the parameters are not expressible.

    ``stream_filters``: check the global buffer's filter partition against one processing pass's
    filters (p*t*q*r*R*S words) instead of the m filters the buffer's tile spans, as the chip does
    (JSSC17: filters load from DRAM while the array computes; AlexNet CONV1's m = 96 filters of
    11 x 11 are 11,616 words, its partition holds 4,096). The counts are the same either way: the
    loop over the m/(p*t) passes is the buffer's outermost, so each pass's filters are used only
    during that pass and are fetched once per DRAM step in both readings. A nest of such a mapping
    must be built with ``build_nest(..., check_capacity_fit=False)`` (this function has checked)."""
    return _build(dims, arch, RowStationaryParams(m=m, n=n, e=e, p=p, q=q, r=r, t=t), layer_name,
                  stream_filters)


# ------------------------------------------------------------------------------------------------
# Searching for parameters
# ------------------------------------------------------------------------------------------------
def _pe_candidates(dims: LoopDims, arch: Architecture, *, remainders: bool = False) -> list[tuple[RowStationaryParams, _Placement]]:
    """Every (e, p, q, r, t) that fits the spads and the array, with the smallest m (= p*t) and n = 1
    as placeholders; sorted by active PEs, most first, then by the parameters (deterministic).
    ``remainders``: also every e that does not divide E (a last, smaller pass)."""
    ifmap, filt, psum = (_spad_capacity(arch, name) for name in ("ifmap_spad", "filter_spad", "psum_spad"))
    found = []
    for e in (range(1, dims.P + 1) if remainders else _divisors(dims.P)):
        for q in (q for q in _divisors(dims.C) if q * dims.S <= ifmap):
            for p in (p for p in _divisors(dims.M) if p <= psum and p * q * dims.S <= filt):
                for r in _divisors(dims.C // q):
                    for t in _divisors(dims.M // p):
                        params = RowStationaryParams(m=p * t, n=1, e=e, p=p, q=q, r=r, t=t)
                        placement = _placement(dims, arch, params)
                        if not isinstance(placement, tuple):
                            found.append((params, placement))
    found.sort(key=lambda item: (-item[0].active_pes(dims), _order_key(item[0])))
    return found


def _order_key(params: RowStationaryParams) -> tuple[int, ...]:
    """Final deterministic preference: more filters and channels per PE (more spad reuse), bigger
    passes, then the plain values."""
    return (-params.p * params.q, -params.p, -params.m, -params.n,
            *(getattr(params, k) for k in PARAMETERS))


def _buffer_options(dims: LoopDims, arch: Architecture, params: RowStationaryParams,
                    placement: _Placement, layer_name: str, *, largest: bool) -> list[RowStationaryParams]:
    """(m, n) choices for these PE parameters whose tiles fit the global buffer (``build_nest``).

    ``largest``: only the Pareto-maximal ones (neither m nor n can grow). With C innermost at DRAM
    a bigger pass never costs DRAM traffic (ifmaps are fetched M/m times, filters N/n x P/e times),
    so the default search ranks only these. Tiles grow with m, so for each n the
    search walks m downwards and stops at the first that fits."""
    fitting = []
    for n in _divisors(dims.N):
        for m in sorted((m for m in _divisors(dims.M) if m % (params.p * params.t) == 0), reverse=True):
            candidate = RowStationaryParams(**{**params.as_dict(), "m": m, "n": n})
            try:
                build_nest(dims, arch, mapping_from_loops(arch, _loops(dims, candidate, placement)),
                           layer_name=layer_name)
            except MappingError:
                continue
            fitting.append(candidate)
            if largest:
                break
    if not largest:
        return fitting
    return [c for c in fitting
            if not any(o.m >= c.m and o.n >= c.n and (o.m, o.n) != (c.m, c.n) for o in fitting)]


def _level_words(dims: LoopDims, arch: Architecture, params: RowStationaryParams,
                 layer_name: str) -> tuple[int, int]:
    """(DRAM words, global-buffer words) of the closed-form model, reads + fills + updates."""
    nest = build_nest(dims, arch, _build(dims, arch, params, layer_name), layer_name=layer_name)
    counts = closed_form_counts(nest, arch)
    every = counts.totals()
    totals = [int(every[level].sum()) for level in (0, 1)]
    return totals[0], totals[1]


def _choose(dims: LoopDims, arch: Architecture, candidates: list[RowStationaryParams],
            layer_name: str) -> RowStationaryChoice:
    """The candidate with the fewest DRAM words, then the fewest buffer words, then ``_order_key``."""
    words = {c: _level_words(dims, arch, c, layer_name) for c in candidates}
    best = min(candidates, key=lambda c: (*words[c], _order_key(c)))
    return RowStationaryChoice(params=best, mapping=_build(dims, arch, best, layer_name),
                               active_pes=best.active_pes(dims), dram_words=words[best][0],
                               glb_words=words[best][1])


def default_row_stationary(dims: LoopDims, arch: Architecture, layer_name: str) -> RowStationaryChoice:
    """RS parameters for any conv or FC layer: the most active PEs that fit the spads, the array and
    the buffer; ties go to the fewest DRAM words, then the fewest buffer words (closed-form model),
    then more filters x channels per PE. Deterministic. Raises :class:`RowStationaryError` when no
    parameters fit (e.g. a filter taller than the array)."""
    _check_arch(arch, layer_name)
    by_pes: dict[int, list[tuple[RowStationaryParams, _Placement]]] = {}
    for params, placement in _pe_candidates(dims, arch):
        by_pes.setdefault(params.active_pes(dims), []).append((params, placement))
    for pes in sorted(by_pes, reverse=True):
        options = [option for params, placement in by_pes[pes]
                   for option in _buffer_options(dims, arch, params, placement, layer_name,
                                                 largest=True)]
        if options:
            return _choose(dims, arch, _prune(dims, arch, options, layer_name), layer_name)
    raise _no_parameters(dims, arch, layer_name)


def _no_parameters(dims: LoopDims, arch: Architecture, layer_name: str) -> RowStationaryError:
    """Why no parameters fit: the failure of the smallest ones (all 1), or else the buffer."""
    smallest = RowStationaryParams(m=1, n=1, e=1, p=1, q=1, r=1, t=1)
    try:
        _build(dims, arch, smallest, layer_name)
    except RowStationaryError as exc:
        return RowStationaryError(f"{exc}; so no row-stationary parameters fit (the smallest, "
                                  "m=n=e=p=q=r=t=1, already fail)",
                                  layer=exc.layer, parameter=exc.parameter, value=exc.value)
    return _fail(layer_name, "layer", str(tuple(dims)),
                 "no row-stationary parameters fit the scratchpads, the PE array and the global "
                 "buffer of this architecture")


def _prune(dims: LoopDims, arch: Architecture, options: list[RowStationaryParams],
           layer_name: str) -> list[RowStationaryParams]:
    """Keep the options whose DRAM words are the fewest. DRAM traffic depends only on the buffer's
    tiles (m, n, e, q*r), so it is computed once per distinct tile shape."""
    dram: dict[tuple[int, ...], int] = {}
    for c in options:
        key = (c.m, c.n, c.e, c.q * c.r)
        if key not in dram:
            dram[key] = _level_words(dims, arch, c, layer_name)[0]
    fewest = min(dram.values())
    return [c for c in options if dram[(c.m, c.n, c.e, c.q * c.r)] == fewest]


def nearest_row_stationary(dims: LoopDims, arch: Architecture, target: RowStationaryParams,
                           layer_name: str) -> RowStationaryChoice:
    """The expressible RS parameters closest to ``target`` (e.g. a published mapping that is not
    expressible): fewest parameters changed, then the smallest total |log2| change, then the most
    active PEs, then the fewest DRAM words. Deterministic. Considers every e up to E, also those
    that leave a last, smaller pass."""
    _check_arch(arch, layer_name)

    def distance(c: RowStationaryParams) -> tuple[int, float, int]:
        changed = [k for k in PARAMETERS if getattr(c, k) != getattr(target, k)]
        spread = sum(abs(math.log2(getattr(c, k) / getattr(target, k))) for k in changed)
        return (len(changed), round(spread, 9), -c.active_pes(dims))

    options = [option for params, placement in _pe_candidates(dims, arch, remainders=True)
               for option in _buffer_options(dims, arch, params, placement, layer_name, largest=False)]
    if not options:
        raise _no_parameters(dims, arch, layer_name)
    closest = min(distance(c) for c in options)
    return _choose(dims, arch, [c for c in options if distance(c) == closest], layer_name)


__all__ = [
    "PARAMETERS", "RS_LEVELS", "RowStationaryChoice", "buffer_filter_words", "RowStationaryError", "RowStationaryParams",
    "default_row_stationary", "nearest_row_stationary", "row_stationary_mapping",
]
