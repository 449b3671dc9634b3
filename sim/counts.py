"""Access counts: the one result type that both the engine and the closed-form model produce.

Counts are per *instance* of a storage level (all utilised instances of a level see the same
counts under perfect factorisation), with the number of utilised instances beside them, as
Timeloop reports them. Energy is computed from these by ``sim.energy`` and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.arch import DATA_TYPES

ACTIONS = ("reads", "fills", "updates")
NOC_ACTIONS = ("deliveries", "drains")


@dataclass
class AccessCounts:
    """``storage[level, data_type, action]`` per instance; ``noc[level, data_type, noc_action]``: words
    crossing the fan-out *above* ``level`` (deliveries downwards, counted per receiving instance;
    drains upwards, before spatial reduction)."""

    level_names: tuple[str, ...]
    storage: np.ndarray  # int64 (levels, 3, 3)
    instances: np.ndarray  # int64 (levels,)
    noc: np.ndarray  # int64 (levels, 3, 2)
    macs: int
    macs_zero_operand: int  # MACs with a zero weight or input (needs data; -1 if not counted)
    cycles_compute: int  # one MAC per PE per cycle; under zero skipping, lockstep (sim.engine)
    pes_used: int
    # Sparsity on real data (sim.engine; the closed form leaves the dense defaults):
    macs_zero_weight: int = -1  # MACs with a zero weight (-1: not counted)
    macs_zero_input: int = -1  # MACs with a zero input
    macs_zero_both: int = -1  # MACs with both zero
    macs_gated: int = 0  # MACs that spend no MAC energy (a gated or skipped zero operand)
    macs_skipped: int = 0  # MACs that take no cycle (a skipped zero operand)
    # reads at each data type's innermost level saved by zero handling, all instances together
    reads_saved: np.ndarray = field(default_factory=lambda: np.zeros(len(DATA_TYPES), np.int64))
    # DRAM compression per data type: whether applied; compressed bits and vector accesses (each
    # chunk rounded up to whole accesses) of DRAM reads ([:, 0]) and writes ([:, 1])
    dram_compressed: np.ndarray = field(default_factory=lambda: np.zeros(len(DATA_TYPES), np.bool_))
    dram_bits: np.ndarray = field(default_factory=lambda: np.zeros((len(DATA_TYPES), 2), np.int64))
    dram_vectors: np.ndarray = field(default_factory=lambda: np.zeros((len(DATA_TYPES), 2), np.int64))
    # cycles with stalls (a sim.timing.Timing; the engine's schedule or the closed-form bound)
    timing: object = None

    @classmethod
    def empty(cls, level_names: tuple[str, ...]) -> "AccessCounts":
        n = len(level_names)
        return cls(
            level_names=tuple(level_names),
            storage=np.zeros((n, len(DATA_TYPES), len(ACTIONS)), np.int64),
            instances=np.zeros(n, np.int64),
            noc=np.zeros((n, len(DATA_TYPES), len(NOC_ACTIONS)), np.int64),
            macs=0, macs_zero_operand=-1, cycles_compute=0, pes_used=0,
        )

    @property
    def macs_performed(self) -> int:
        """MACs that spend MAC energy (all of them unless zero operands are gated or skipped)."""
        return self.macs - self.macs_gated

    def total(self, level: int, data_type: str, action: str) -> int:
        return int(self.storage[level, DATA_TYPES.index(data_type), ACTIONS.index(action)] * self.instances[level])

    def per_instance(self, level: int, data_type: str, action: str) -> int:
        return int(self.storage[level, DATA_TYPES.index(data_type), ACTIONS.index(action)])

    def differences(self, other: "AccessCounts") -> list[str]:
        """Human-readable list of every dense counter that differs (empty when equal): the counts
        both the engine and the closed form produce. The sparsity fields are data-dependent extras
        of the engine and are not compared (``cycles_compute`` is, so compare skipping hardware
        with its dense twin only through the other counters)."""
        out = []
        for li, name in enumerate(self.level_names):
            if self.instances[li] != other.instances[li]:
                out.append(f"{name} instances {self.instances[li]} != {other.instances[li]}")
            for di, d in enumerate(DATA_TYPES):
                for ai, a in enumerate(ACTIONS):
                    if self.storage[li, di, ai] != other.storage[li, di, ai]:
                        out.append(f"{name} {d} {a} {self.storage[li, di, ai]} != {other.storage[li, di, ai]}")
                for ai, a in enumerate(NOC_ACTIONS):
                    if self.noc[li, di, ai] != other.noc[li, di, ai]:
                        out.append(f"noc above {name} {d} {a} {self.noc[li, di, ai]} != {other.noc[li, di, ai]}")
        for attr in ("macs", "cycles_compute", "pes_used"):
            if getattr(self, attr) != getattr(other, attr):
                out.append(f"{attr} {getattr(self, attr)} != {getattr(other, attr)}")
        return out
