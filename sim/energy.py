"""Energy: a pure function of access counts and the architecture's energy table.

Per storage level and data type: ``instances x ceil(count_per_instance / block_words) x energy per
access`` for each action (a vector access moves ``block_words`` words, as Timeloop rounds it). NoC:
words crossing a fan-out x energy per word. MAC: MACs x energy per MAC. A missing entry raises.

Sparsity (counts from ``sim.engine`` on real data; see its docstring): the MAC row counts the MACs
performed (``macs - macs_gated``); the reads row of each data type's innermost level counts the
reads left after zero handling (``reads_saved``), rounded up to whole vector accesses per instance
on average; a DRAM row of a compressed data type keeps its uncompressed ``count_words`` but costs
its compressed vector accesses (``dram_vectors``: each chunk's bits / (block_words x word_bits),
rounded up per chunk). Counts from the closed-form model carry no data, so they are priced dense.
"""
from __future__ import annotations

import pandas as pd

from sim.arch import DATA_TYPES, Architecture
from sim.errors import ConfigError
from sim.counts import ACTIONS, NOC_ACTIONS, AccessCounts

# How results group levels (the energy-aware-pruning paper's breakdown by memory level).
LEVEL_CLASSES = ("DRAM", "global_buffer", "NoC", "register_file", "MAC")
# The paper's breakdown by data type (partial sums count as output feature maps).
DATA_TYPE_CLASSES = {"inputs": "input_fmaps", "outputs": "output_fmaps", "weights": "weights", "compute": "computation"}

ACCESS_COLUMNS = ["level", "level_class", "data_type", "action", "count_words", "vector_accesses", "energy"]


class EnergyTableError(ConfigError):
    """The architecture's energy table lacks an entry the counts need (a config problem)."""


def level_class(arch: Architecture, index: int) -> str:
    if index == 0:
        return "DRAM"
    return "global_buffer" if arch.instances(index) == 1 else "register_file"


def noc_name(arch: Architecture, index: int) -> str:
    fanouts = [i for i, level in enumerate(arch.levels) if level.fanout > 1]
    return "NoC" if len(fanouts) == 1 else f"NoC->{arch.levels[index].name}"


def access_energy(counts: AccessCounts, arch: Architecture) -> pd.DataFrame:
    """One row per level x data type x action with its word count, vector accesses and energy
    (in ``arch.energy_unit``)."""
    return pd.DataFrame(access_energy_rows(counts, arch), columns=ACCESS_COLUMNS)


def access_energy_rows(counts: AccessCounts, arch: Architecture) -> list[tuple]:
    """The rows of :func:`access_energy` as plain tuples (``ACCESS_COLUMNS``), for hot loops. A
    layer run in parts: each row the sum of the parts' rows (each part rounds its own vector
    accesses per instance)."""
    if counts.parts:
        summed: dict[tuple, list] = {}
        for part in counts.parts:
            for row in access_energy_rows(part, arch):
                key = row[:4]
                if key in summed:
                    summed[key] = [a + b for a, b in zip(summed[key], row[4:])]
                else:
                    summed[key] = list(row[4:])
        return [(*key, *values) for key, values in summed.items()]
    rows = []
    for li, level in enumerate(arch.levels):
        instances = int(counts.instances[li])
        for di, d in enumerate(DATA_TYPES):
            if d in level.keeps:
                for ai, action in enumerate(ACTIONS):
                    per_instance = int(counts.storage[li, di, ai])
                    entry = {"reads": level.energy_read, "fills": level.energy_fill, "updates": level.energy_update}[action]
                    if entry is None:
                        raise EnergyTableError(f"{arch.source_file}: level {level.name!r} has no energy for {action}; add energy_{action[:-1]}_per_access")
                    vectors = -(-per_instance // level.block_words) * instances
                    words = per_instance * instances
                    if action == "reads" and counts.reads_saved[di] and li == arch.levels_keeping(d)[-1]:
                        words -= int(counts.reads_saved[di])
                        vectors = -(-words // (level.block_words * instances)) * instances
                    if li == 0 and counts.dram_compressed[di] and action != "fills":
                        vectors = int(counts.dram_vectors[di, 0 if action == "reads" else 1])
                    rows.append((level.name, level_class(arch, li), d, action, words,
                                 vectors, vectors * entry.energy_per_access))
            if level.fanout > 1:
                for ai, action in enumerate(NOC_ACTIONS):
                    words = int(counts.noc[li, di, ai])
                    if words == 0 and level.noc_energy_per_word is None:
                        continue
                    if level.noc_energy_per_word is None:
                        raise EnergyTableError(
                            f"{arch.source_file}: level {level.name!r} has a fan-out that moves {d} but no "
                            f"noc_energy_per_word; add noc_energy_per_word and noc_energy_source to that level "
                            f"(0.0 if the network's energy is to be ignored)"
                        )
                    rows.append((noc_name(arch, li), "NoC", d, action, words, words,
                                 words * level.noc_energy_per_word.energy_per_access))
    macs = counts.macs_performed
    rows.append(("MAC", "MAC", "compute", "macs", macs, macs, macs * arch.mac_energy.energy_per_access))
    return rows


def energy_breakdown(table: pd.DataFrame) -> dict[str, float]:
    """Totals by data-type class, by level class, and overall, from an ``access_energy`` table."""
    out = {"energy_total": float(table.energy.sum())}
    for d, name in DATA_TYPE_CLASSES.items():
        out[f"energy_{name}"] = float(table.energy[table.data_type == d].sum())
    for cls in LEVEL_CLASSES:
        out[f"energy_{cls.lower()}"] = float(table.energy[table.level_class == cls].sum())
    return out


def total_energy(counts: AccessCounts, arch: Architecture) -> float:
    """The total of :func:`access_energy` without building the table."""
    return breakdown_of_rows(access_energy_rows(counts, arch))["energy_total"]


def breakdown_of_rows(rows: list[tuple]) -> dict[str, float]:
    """:func:`energy_breakdown` of :func:`access_energy_rows` (sums in row order, ``math.fsum``)."""
    import math

    energy = ACCESS_COLUMNS.index("energy")
    data_type, cls = ACCESS_COLUMNS.index("data_type"), ACCESS_COLUMNS.index("level_class")
    out = {"energy_total": math.fsum(row[energy] for row in rows)}
    for d, name in DATA_TYPE_CLASSES.items():
        out[f"energy_{name}"] = math.fsum(row[energy] for row in rows if row[data_type] == d)
    for level in LEVEL_CLASSES:
        out[f"energy_{level.lower()}"] = math.fsum(row[energy] for row in rows if row[cls] == level)
    return out
