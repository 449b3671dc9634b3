"""Timing: how long a layer takes on an architecture, from its transfers and its compute.

Resources. Every storage level has a read port and a write port (one port when
``shared_read_write_port``), with bandwidths in words per cycle of the level's own clock
(``clock_mhz``, default the core clock); a level with a fan-out has one bus per data type into the
array (``noc_bandwidth_words_per_cycle``; a multicast word costs one bus cycle, however many
instances receive it), a bus for outputs leaving the array after spatial reduction and local links
for the reduction. Missing bandwidths are unlimited. All times are core cycles: a bandwidth of
``b`` words per level cycle at ``f`` MHz gives ``b * f / core_mhz`` words per core cycle, shared
evenly by the resource's copies (instances of the level, or of the level above a fan-out).

Transfers. When a level's tile moves (a tile event of the counting engine), the new words come
from the parent (parent read port, buses of the fan-outs in between, the level's write port) and
the partial sums of the old tile go back (the level's read port, the output bus after reduction or
a local link for the reduced-away copies, the parent's write port). The last tile of every output
level is written back after the last step.

Schedule (``sim.kernels``, step by step). A step is one iteration of the temporal loops above the
PE array (each PE then runs its own loops: the step's compute cycles, one MAC per PE per cycle, or
the busiest PE's MACs not skipped under zero skipping). The transfers of a step, grouped by parent
level, occupy every resource they use for ``max(words / bandwidth)`` over those resources, after
the resources' previous transfers and after the parent holds its own tile. A transfer into a level
that double-buffers the data type may start as soon as the tile before the previous one has been
used (it overlaps the previous compute); otherwise it starts after the previous step's compute
(fill, then compute). ``[timing] compute_waits_for_dram`` makes DRAM transfers of inputs and outputs
serial whatever the buffering; ``pass_ramp_up`` makes every transfer into the array serial at a step
where the array's weights tile changes (a new processing pass). Compute waits for every transfer of
its step. A wait of the array is a stall, counted by the class of the resource that bounded the
transfer it waited for: DRAM (a DRAM port), buffer (an on-chip level's port), NoC (a bus or link).
``cycles_stall_compute`` counts the cycles inside the compute cycles in which PEs of a lockstep step
wait for its busiest PE (zero skipping); it is 0 on dense hardware.

DRAM moves compressed data types as their compressed chunks (``sim.compression``), the same bits
the counts report; outputs only when their final values are given before the run (``output_values``
of ``sim.engine.run_engine``), else at their uncompressed size.

Approximations: the transfers of a step are scheduled together before its compute, also those
that happen between a PE's own levels during the step; with several fan-outs whose loops
interleave, steps are timed in the order the engine visits them.

Bound (:func:`bound_cycles`): the closed form beside the schedule, like Timeloop's: the largest of
the compute cycles and, for every resource, all its words over its bandwidth. The schedule
serialises each resource and the compute, so its cycles are never below the bound, and equal it
when nothing stalls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.arch import DATA_TYPES, Architecture
from sim.mapping import Nest

STALL_CAUSES = ("dram", "buffer", "noc")
RESOURCE_KINDS = 7  # read port, write port, 3 buses (one per data type), output bus, reduction link
# Transfer kinds of (level, data type): how the fill may overlap compute.
PREFETCH, SERIAL, PREFETCH_IN_ARRAY = 0, 1, 2


@dataclass(frozen=True)
class Timing:
    """Cycles of one layer (core cycles). ``cycles_total = cycles_compute + stalls``."""

    cycles_total: int
    cycles_compute: int
    cycles_stall_dram: int
    cycles_stall_buffer: int
    cycles_stall_noc: int
    cycles_stall_compute: int  # inside cycles_compute: lockstep PEs waiting for the busiest one
    cycles_exact: float  # the schedule's end before rounding the stalls
    cycles_bound: float  # the closed-form bound (:func:`bound_cycles`)
    bound_resource: str  # what sets the bound ("compute" or a resource name)

    @property
    def cycles_stall(self) -> int:
        return self.cycles_stall_dram + self.cycles_stall_buffer + self.cycles_stall_noc


def read_port(i: int, nlev: int) -> int:
    return i


def write_port(i: int, nlev: int, shared: bool) -> int:
    return i if shared else nlev + i


def bus(f: int, d: int, nlev: int) -> int:
    return 2 * nlev + 3 * f + d


def output_bus(f: int, nlev: int) -> int:
    return 5 * nlev + f


def reduction_link(f: int, nlev: int) -> int:
    return 6 * nlev + f


def words_per_core_cycle(arch: Architecture, level_index: int, bandwidth: float | None) -> float:
    """A bandwidth in words per cycle of the level's clock, in words per core cycle (inf: unlimited)."""
    if bandwidth is None:
        return math.inf
    clock = arch.levels[level_index].clock_mhz or arch.clock_mhz
    return bandwidth * clock / arch.clock_mhz


@dataclass(frozen=True)
class Resources:
    """Per resource: core cycles per word (0: unlimited; shared evenly by its copies), stall class
    (0 DRAM, 1 buffer, 2 NoC) and name."""

    cost: np.ndarray  # float64 (7 * levels,)
    cause: np.ndarray  # int64
    names: tuple[str, ...]
    shared_port: np.ndarray  # bool (levels,)


def resources(nest: Nest, arch: Architecture) -> Resources:
    nlev = len(arch.levels)
    cost = np.zeros(RESOURCE_KINDS * nlev, np.float64)
    cause = np.full(RESOURCE_KINDS * nlev, 2, np.int64)
    names = [""] * (RESOURCE_KINDS * nlev)
    shared = np.array([level.shared_read_write_port for level in arch.levels], np.bool_)

    def put(index: int, bandwidth: float, copies: int, name: str, stall: int) -> None:
        names[index] = name
        cause[index] = stall
        if math.isfinite(bandwidth):
            cost[index] = 1.0 / (bandwidth * max(copies, 1))

    for i, level in enumerate(arch.levels):
        copies = nest.instances(i)
        stall = 0 if i == 0 else 1
        put(write_port(i, nlev, False), words_per_core_cycle(arch, i, level.write_bandwidth_words_per_cycle),
            copies, f"{level.name} write port", stall)
        # a shared port is the read port (written last so that its entry wins)
        put(read_port(i, nlev), words_per_core_cycle(arch, i, level.read_bandwidth_words_per_cycle),
            copies, f"{level.name} {'read-write' if level.shared_read_write_port else 'read'} port", stall)
        if level.fanout > 1:
            above = nest.instances(i - 1)
            for d, data_type in enumerate(DATA_TYPES):
                put(bus(i, d, nlev), words_per_core_cycle(arch, i, level.noc_bandwidth_words_per_cycle.get(data_type)),
                    above, f"{data_type} bus into {level.name}", 2)
            put(output_bus(i, nlev), words_per_core_cycle(arch, i, level.noc_output_bandwidth_words_per_cycle),
                above, f"output bus out of {level.name}", 2)
            put(reduction_link(i, nlev), words_per_core_cycle(arch, i, level.noc_reduction_bandwidth_words_per_cycle),
                copies, f"reduction links of {level.name}", 2)
    return Resources(cost=cost, cause=cause, names=tuple(names), shared_port=shared)


def array_level(arch: Architecture) -> int:
    """The innermost level with a fan-out (its instances are the PEs' first level); len(levels) if none."""
    fanouts = [i for i, level in enumerate(arch.levels) if level.fanout > 1]
    return fanouts[-1] if fanouts else len(arch.levels)


def transfer_kinds(arch: Architecture, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``kind[i, d]`` (PREFETCH, SERIAL or PREFETCH_IN_ARRAY; -1: no transfer into level i) and
    ``starts_pass[i, d]`` (a tile event of (i, d) starts a processing pass)."""
    nlev = len(arch.levels)
    first_array = array_level(arch)
    kind = np.full((nlev, 3), -1, np.int64)
    starts_pass = np.zeros((nlev, 3), np.bool_)
    for i, level in enumerate(arch.levels):
        for d, data_type in enumerate(DATA_TYPES):
            p = int(parent[i, d])
            if p < 0:
                continue
            in_array = i >= first_array
            serial = data_type not in level.double_buffered or (
                arch.timing.compute_waits_for_dram and p == 0 and data_type != "weights")
            kind[i, d] = SERIAL if serial else (PREFETCH_IN_ARRAY if in_array else PREFETCH)
            starts_pass[i, d] = arch.timing.pass_ramp_up and in_array and data_type == "weights"
    return kind, starts_pass


def step_start(nest: Nest, arch: Architecture) -> int:
    """The first loop inside a step: the first loop of the PE array's level (or, without a fan-out,
    of the innermost level)."""
    first_array = array_level(arch)
    return nest.level_start[first_array if first_array < len(arch.levels) else len(arch.levels) - 1]


def resource_words(counts, nest: Nest, arch: Architecture,
                   compressed: tuple[bool, bool, bool] = (False, False, False)) -> np.ndarray:
    """Words each resource carries over the layer, from access counts (the traffic the schedule
    moves: fills, parent reads, drains; not the MACs' operand reads at the innermost levels).
    ``compressed[d]``: DRAM's port moves data type d as its compressed bits (``counts.dram_bits``)."""
    nlev = len(arch.levels)
    shared = [level.shared_read_write_port for level in arch.levels]
    words = np.zeros(RESOURCE_KINDS * nlev, np.float64)
    for d, data_type in enumerate(DATA_TYPES):
        holders = arch.levels_keeping(data_type)
        for position in range(1, len(holders)):
            p, i = holders[position - 1], holders[position]
            if counts.parts:
                raise ValueError("resource words of a layer run in parts: take each part's")
            n_i, n_p = int(counts.instances[i]), int(counts.instances[p])
            reads_i, fills_i, updates_i = (int(v) for v in counts.storage[i, d])
            parent_reads = int(counts.storage[p, d, 0]) * n_p
            words[write_port(i, nlev, shared[i])] += fills_i * n_i
            port_reads = parent_reads
            if p == 0 and compressed[d]:
                port_reads = int(counts.dram_bits[d, 0]) / arch.word_bits[data_type]
            words[read_port(p, nlev)] += port_reads
            fanouts = [f for f in range(p + 1, i + 1) if arch.levels[f].fanout > 1]
            for f in fanouts:
                words[bus(f, d, nlev)] += parent_reads
            if data_type == "outputs":
                drained = (fills_i + updates_i - reads_i) * n_i  # every instance drains its tiles
                arrived = int(counts.storage[p, d, 2]) * n_p  # after spatial reduction
                words[read_port(i, nlev)] += drained
                written = arrived
                if p == 0 and compressed[d]:
                    written = int(counts.dram_bits[d, 1]) / arch.word_bits[data_type]
                words[write_port(p, nlev, shared[p])] += written
                for f in fanouts:
                    words[output_bus(f, nlev)] += arrived
                    words[reduction_link(f, nlev)] += drained - arrived
    return words


def bound_cycles(counts, nest: Nest, arch: Architecture,
                 compressed: tuple[bool, bool, bool] = (False, False, False)) -> tuple[float, str]:
    """The closed-form bound: max(compute cycles, words / bandwidth of every resource), and what
    sets it (``compressed``: see :func:`resource_words`)."""
    res = resources(nest, arch)
    times = resource_words(counts, nest, arch, compressed) * res.cost
    worst = int(np.argmax(times)) if times.size else 0
    if times.size and times[worst] > counts.cycles_compute:
        return float(times[worst]), res.names[worst]
    return float(counts.cycles_compute), "compute"


def lockstep_wait_cycles(counts) -> int:
    """Cycles inside the compute cycles in which lockstep PEs wait for the busiest one: the compute
    cycles minus those of a perfect balance of the MACs not skipped over the PEs used."""
    if counts.pes_used == 0:
        return 0
    balanced = -(-(counts.macs - counts.macs_skipped) // counts.pes_used)
    return max(0, counts.cycles_compute - balanced)


def model_timing(counts, nest: Nest, arch: Architecture) -> Timing:
    """The closed-form model's timing: the bound, its excess over compute cycles counted as a stall
    of the bounding resource's class."""
    bound, what = bound_cycles(counts, nest, arch)
    stalls = dict.fromkeys(STALL_CAUSES, 0)
    if what != "compute":
        res = resources(nest, arch)
        stalls[STALL_CAUSES[int(res.cause[res.names.index(what)])]] = int(round(bound - counts.cycles_compute))
    return Timing(
        cycles_total=counts.cycles_compute + sum(stalls.values()), cycles_compute=counts.cycles_compute,
        cycles_stall_dram=stalls["dram"], cycles_stall_buffer=stalls["buffer"], cycles_stall_noc=stalls["noc"],
        cycles_stall_compute=lockstep_wait_cycles(counts), cycles_exact=bound, cycles_bound=bound,
        bound_resource=what,
    )


def sequential_timing(parts: list[Timing]) -> Timing:
    """The timing of parts run one after the other (a layer run in parts, ``sim.counts``): cycles,
    stalls and bounds add up; the bounding resource is that of the part with the largest bound."""
    slowest = max(parts, key=lambda t: t.cycles_bound)
    return Timing(
        cycles_total=sum(t.cycles_total for t in parts), cycles_compute=sum(t.cycles_compute for t in parts),
        cycles_stall_dram=sum(t.cycles_stall_dram for t in parts),
        cycles_stall_buffer=sum(t.cycles_stall_buffer for t in parts),
        cycles_stall_noc=sum(t.cycles_stall_noc for t in parts),
        cycles_stall_compute=sum(t.cycles_stall_compute for t in parts),
        cycles_exact=sum(t.cycles_exact for t in parts), cycles_bound=sum(t.cycles_bound for t in parts),
        bound_resource=slowest.bound_resource,
    )


def pe_utilization(counts, timing: Timing, arch: Architecture) -> float:
    """Active PE-cycles (MACs that take a cycle) over all PE-cycles of the layer."""
    if timing.cycles_total == 0:
        return 0.0
    return (counts.macs - counts.macs_skipped) / (arch.mac_units * timing.cycles_total)
