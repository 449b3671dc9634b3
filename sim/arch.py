"""The accelerator architecture as validated, frozen objects.

An architecture is an ordered list of storage levels from DRAM inwards, then the MAC units. What a
level *is* (capacity, block, bandwidth, energy per access) is kept apart from how it may be used
(``keeps``: which data types it stores; the others bypass it). A level with ``fanout_x * fanout_y
> 1`` has that many instances per instance of the level above it (the spatial fan-out of the PE
array sits above the first per-PE level). Only ``sim.config`` builds these objects from files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

DATA_TYPES = ("weights", "inputs", "outputs")
COUNTING_MODES = ("timeloop", "exact")
MULTICAST_MODES = ("identical", "overlap")
ENERGY_UNITS = ("pJ", "MAC")  # "MAC": normalised to the energy of one MAC
# Zero handling of an operand (weights, inputs), see ``sim.engine``: "none" (dense), "gate" (a zero
# operand saves the MAC's energy and the register-file read of the other operand, not its cycle),
# "skip" (a zero operand costs neither energy nor a cycle; lockstep PEs wait for the slowest).
ZERO_HANDLING_MODES = ("none", "gate", "skip")
OPERANDS = ("weights", "inputs")
# DRAM compression of a data type, per transferred chunk, see ``sim.compression``.
COMPRESSION_MODES = ("none", "rle", "significance_map")
# Dataflows the mapper knows (constraints on the mapping space, see ``sim.dataflow``).
DATAFLOWS = ("RS", "WS", "OSA", "OSB", "OSC", "NLR", "IS")


@dataclass(frozen=True, kw_only=True)
class TimingOptions:
    """Whole-chip timing behaviour (``sim.timing``); the defaults add no stall of their own.

    ``compute_waits_for_dram``: the PE array does not compute while inputs are loaded from DRAM or
    outputs are written to DRAM (Eyeriss); other DRAM transfers follow the levels' double buffering.
    ``pass_ramp_up``: each processing pass (a new weights tile in the PE array) starts empty: the
    array's transfers of that step cannot overlap the previous compute.
    """

    compute_waits_for_dram: bool = False
    pass_ramp_up: bool = False


@dataclass(frozen=True, kw_only=True)
class EnergyEntry:
    """Energy of one access of ``block_words`` words (one vector access), and where it came from."""

    energy_per_access: float
    source: str


@dataclass(frozen=True, kw_only=True)
class StorageLevel:
    name: str
    keeps: tuple[str, ...]
    capacity_words: int | None  # None: unbounded (DRAM)
    partition_words: dict[str, int] = field(default_factory=dict)  # per-data-type reserved capacity
    block_words: int = 1
    fanout_x: int = 1
    fanout_y: int = 1
    multicast: str = "identical"  # how the fan-out above this level shares deliveries
    read_bandwidth_words_per_cycle: float | None = None
    write_bandwidth_words_per_cycle: float | None = None
    energy_read: EnergyEntry
    energy_fill: EnergyEntry
    energy_update: EnergyEntry
    noc_energy_per_word: EnergyEntry | None = None  # per word crossing the fan-out above this level
    # Timing (``sim.timing``). Bandwidths are in words per cycle of this level's clock.
    clock_mhz: float | None = None  # clock of the level's ports; None: the core clock
    shared_read_write_port: bool = False  # reads and writes share the read port's bandwidth
    double_buffered: tuple[str, ...] = ()  # data types whose next tile fills while the current is used
    # On a level with a fan-out: the buses from the parent into the array, per data type (words per
    # cycle; multicast costs one bus cycle per word, not per receiver), the bus carrying outputs out
    # of the array (after spatial reduction), and each local link that passes partial sums between
    # neighbouring instances for the reduction. None: unlimited.
    noc_bandwidth_words_per_cycle: dict[str, float] = field(default_factory=dict)
    noc_output_bandwidth_words_per_cycle: float | None = None
    noc_reduction_bandwidth_words_per_cycle: float | None = None

    @property
    def fanout(self) -> int:
        return self.fanout_x * self.fanout_y

    def capacity_for(self, data_type: str) -> int | None:
        return self.partition_words.get(data_type, self.capacity_words)


@dataclass(frozen=True, kw_only=True)
class Architecture:
    name: str
    description: str
    source_file: str
    clock_mhz: float
    energy_unit: str
    counting: str  # "timeloop" or "exact", see sim/model.py
    word_bits: dict[str, int]
    levels: tuple[StorageLevel, ...]
    mac_energy: EnergyEntry
    # Sparsity options; the defaults are dense hardware (every MAC and access happens).
    zero_handling: dict[str, str] = field(default_factory=lambda: {d: "none" for d in OPERANDS})
    dram_compression: dict[str, str] = field(default_factory=lambda: {d: "none" for d in DATA_TYPES})
    timing: TimingOptions = field(default_factory=TimingOptions)
    # The dataflow the mapper searches by default (one of DATAFLOWS; None: the mapper's default, RS).
    dataflow: str | None = None

    @property
    def exploits_zeros(self) -> bool:
        """Whether any option makes counts or energy depend on the data's zeros."""
        return (any(mode != "none" for mode in self.zero_handling.values())
                or any(mode != "none" for mode in self.dram_compression.values()))

    def level_index(self, name: str) -> int:
        for index, level in enumerate(self.levels):
            if level.name == name:
                return index
        raise KeyError(name)

    def instances(self, level_index: int) -> int:
        """Instances of a level: the product of the fan-outs at and above it."""
        return math.prod(level.fanout for level in self.levels[: level_index + 1])

    @property
    def mac_units(self) -> int:
        return self.instances(len(self.levels) - 1)

    def levels_keeping(self, data_type: str) -> list[int]:
        return [i for i, level in enumerate(self.levels) if data_type in level.keeps]
