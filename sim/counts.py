"""Access counts: the one result type that both the engine and the closed-form model produce.

Counts are per *instance* of a storage level (all utilised instances of a level see the same
counts under perfect factorisation and under a spatial remainder, whose idle instances are not
counted), with the number of utilised instances beside them, as Timeloop reports them. Energy is
computed from these by ``sim.energy`` and nothing else.

A layer run in *parts* (a temporal remainder, ``sim.mapping``: the full passes, then the remainder
pass) has counts that are the sum of its parts' (:meth:`AccessCounts.combine`): ``parts`` holds the
parts, whose instances differ, so ``storage`` holds totals over all instances and ``instances``
the most any part uses; energy is the sum of the parts' energies.
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
    # the counts of the parts run one after the other, when the layer runs in parts (see above)
    parts: tuple = ()

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

    def totals(self) -> np.ndarray:
        """``[level, data_type, action]`` over all instances."""
        if self.parts:
            return self.storage.copy()
        return self.storage * self.instances[:, None, None]

    def total(self, level: int, data_type: str, action: str) -> int:
        return int(self.totals()[level, DATA_TYPES.index(data_type), ACTIONS.index(action)])

    def per_instance(self, level: int, data_type: str, action: str) -> int:
        if self.parts:
            raise ValueError("a layer run in parts has no single per-instance count; use total() or its parts")
        return int(self.storage[level, DATA_TYPES.index(data_type), ACTIONS.index(action)])

    @classmethod
    def combine(cls, parts: list["AccessCounts"], timing: object = None) -> "AccessCounts":
        """The counts of parts run one after the other: every counter summed (``storage`` as totals),
        ``instances`` and ``pes_used`` the most any part uses, ``cycles_compute`` summed."""
        first = parts[0]
        out = cls.empty(first.level_names)
        out.parts = tuple(parts)
        out.storage = sum(p.totals() for p in parts)
        out.instances = np.max([p.instances for p in parts], axis=0)
        out.noc = sum(p.noc for p in parts)
        out.macs = sum(p.macs for p in parts)
        out.macs_zero_operand = -1 if any(p.macs_zero_operand < 0 for p in parts) else sum(p.macs_zero_operand for p in parts)
        out.cycles_compute = sum(p.cycles_compute for p in parts)
        out.pes_used = max(p.pes_used for p in parts)
        for name in ("macs_zero_weight", "macs_zero_input", "macs_zero_both"):
            values = [getattr(p, name) for p in parts]
            setattr(out, name, -1 if min(values) < 0 else sum(values))
        out.macs_gated = sum(p.macs_gated for p in parts)
        out.macs_skipped = sum(p.macs_skipped for p in parts)
        out.reads_saved = sum(p.reads_saved for p in parts)
        out.dram_compressed = np.logical_or.reduce([p.dram_compressed for p in parts])
        out.dram_bits = sum(p.dram_bits for p in parts)
        out.dram_vectors = sum(p.dram_vectors for p in parts)
        out.timing = timing
        return out

    def differences(self, other: "AccessCounts") -> list[str]:
        """Human-readable list of every dense counter that differs (empty when equal): the counts
        both the engine and the closed form produce. The sparsity fields are data-dependent extras
        of the engine and are not compared (``cycles_compute`` is, so compare skipping hardware
        with its dense twin only through the other counters)."""
        out = []
        if len(self.parts) != len(other.parts):
            out.append(f"parts {len(self.parts)} != {len(other.parts)}")
        for k, (mine, theirs) in enumerate(zip(self.parts, other.parts)):
            out += [f"part {k}: {line}" for line in mine.differences(theirs)]
        storage = self.storage if not self.parts else self.totals()
        other_storage = other.storage if not other.parts else other.totals()
        for li, name in enumerate(self.level_names):
            if self.instances[li] != other.instances[li]:
                out.append(f"{name} instances {self.instances[li]} != {other.instances[li]}")
            for di, d in enumerate(DATA_TYPES):
                for ai, a in enumerate(ACTIONS):
                    if storage[li, di, ai] != other_storage[li, di, ai]:
                        out.append(f"{name} {d} {a} {storage[li, di, ai]} != {other_storage[li, di, ai]}")
                for ai, a in enumerate(NOC_ACTIONS):
                    if self.noc[li, di, ai] != other.noc[li, di, ai]:
                        out.append(f"noc above {name} {d} {a} {self.noc[li, di, ai]} != {other.noc[li, di, ai]}")
        for attr in ("macs", "cycles_compute", "pes_used"):
            if getattr(self, attr) != getattr(other, attr):
                out.append(f"{attr} {getattr(self, attr)} != {getattr(other, attr)}")
        return out
