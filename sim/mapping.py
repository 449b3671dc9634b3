"""Mappings: how a layer's loop nest is tiled over an architecture's levels and spread over its PEs.

A mapping gives, per storage level (outer to inner, aligned with ``Architecture.levels``), a list of
temporal loops (outer to inner) and the spatial loops of the fan-out just below that level, as
Timeloop prints them. Loop bounds of each dimension multiply to the layer's dimension (perfect
factorisation), or over-cover it as one of two remainders (imperfect factorisation, below). The
tile a level instance holds is everything at and inside that level: its own temporal and spatial
loops and every inner level's loops.

Spatial remainder (e.g. Eyeriss folding a PE set 27 columns wide onto 14 columns as 14 + 13): a
dimension D's loops may multiply to more than D when its outermost loops (bound > 1) are spatial
loops of one fan-out, with no loop over D above them; the loops over D inside them multiply to a
divisor of D (each instance's share is whole); and the outermost of them has no wholly idle value
(its bound is the fewest that covers D). An instance whose index along D starts at or beyond D is
idle: it holds no data and does no work, so every utilised instance still sees the same counts.

Temporal remainder (e.g. Eyeriss's AlexNet CONV1: 55 ofmap rows in passes of 7, the last of 6): the
nest's outermost loop (the first with a bound above 1) may over-cover an output dimension (N, G, M,
P or Q) when its bound is the fewest passes that cover it. The layer then runs in two parts, one
after the other: the full passes (that loop's bound less one), then the remainder pass, in which the
next loop over the dimension shrinks to cover what is left (spatial loops leaving PEs unused, or a
spatial remainder, or fewer temporal iterations; the part must be a valid mapping). The remainder
pass starts with its tiles cold (the array is reconfigured for it): data the last full pass left in
a buffer is fetched again. Counts are the sum of the parts' (``sim.counts``); see ``Nest.parts``.

Both are counted exactly by the engine and the closed-form model.

A fixed mapping can be written as TOML (format in ``load_mapping``).
"""
from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from networks.layers import LoopDims
from sim.arch import DATA_TYPES, Architecture

DIMS = ("N", "G", "M", "C", "P", "Q", "R", "S")
AXES = ("X", "Y")

# Which loop dimensions index each data type (the others are irrelevant to it: reuse).
RELEVANT_DIMS = {
    "weights": frozenset("GMCRS"),
    "inputs": frozenset("NGCPQRS"),
    "outputs": frozenset("NGMPQ"),
}


class MappingError(ValueError):
    """A mapping that does not fit the layer or the architecture; the message names the constraint."""


@dataclass(frozen=True)
class Loop:
    dim: str
    bound: int
    axis: str | None = None  # None: temporal; "X" or "Y": spatial

    def __str__(self) -> str:
        kind = "for" if self.axis is None else f"spatial-{self.axis} for"
        return f"{kind} {self.dim} in [0:{self.bound})"


@dataclass(frozen=True)
class LevelMapping:
    level: str
    temporal: tuple[Loop, ...] = ()
    spatial: tuple[Loop, ...] = ()  # fan-out below this level


@dataclass(frozen=True)
class Mapping:
    levels: tuple[LevelMapping, ...]
    source: str = "default"

    def loop_nest(self) -> str:
        """The nest outer to inner, one loop a line, indented like code."""
        lines = []
        depth = 0
        for level in self.levels:
            lines.append(f"{'  ' * depth}# {level.level}")
            for loop in (*level.temporal, *level.spatial):
                lines.append(f"{'  ' * depth}{loop}")
                depth += 1
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "level": [
                {
                    "name": lm.level,
                    "temporal": [[l.dim, l.bound] for l in lm.temporal],
                    "spatial": [[l.dim, l.bound, l.axis] for l in lm.spatial],
                }
                for lm in self.levels
            ],
        }


@dataclass(frozen=True)
class NestLoop:
    """A loop of the flattened nest, with the index step it contributes to its dimension."""

    dim: str
    bound: int
    axis: str | None
    level: int  # storage level index the loop belongs to
    step: int  # product of the bounds of the same-dimension loops inside this one


@dataclass(frozen=True)
class Nest:
    """The flattened loop nest of a (layer, architecture, mapping), outer to inner, validated."""

    dims: LoopDims
    loops: tuple[NestLoop, ...]
    level_start: tuple[int, ...]  # index into loops of each level's first loop
    mapping: Mapping = field(compare=False)
    # a temporal remainder: the parts run one after the other, each (nest, dimension, index of its
    # first element along that dimension); empty otherwise
    parts: tuple[tuple["Nest", str, int], ...] = field(default=(), compare=False)

    def loops_above(self, level: int) -> tuple[NestLoop, ...]:
        return self.loops[: self.level_start[level]]

    def loops_within(self, level: int) -> tuple[NestLoop, ...]:
        return self.loops[self.level_start[level]:]

    def spatial_between(self, outer: int, inner: int) -> tuple[NestLoop, ...]:
        """Spatial loops that distribute level ``outer``'s data over level ``inner``'s instances."""
        return tuple(l for l in self.loops if l.axis is not None and outer <= l.level < inner)

    def slots(self, level: int) -> int:
        """Instances of a level the spatial loops above it address (utilised or idle)."""
        return math.prod(l.bound for l in self.loops_above(level) if l.axis is not None)

    @functools.cached_property
    def guarded(self) -> tuple[tuple[str, int], ...]:
        """(dimension, size) of every dimension with a spatial remainder (empty when perfect)."""
        if self.parts:
            return ()
        sizes = dim_sizes(self.dims)
        return tuple((d, sizes[d]) for d in DIMS
                     if math.prod(l.bound for l in self.loops if l.dim == d) > sizes[d])

    def active_mask(self, level: int) -> np.ndarray:
        """Per slot of a level (mixed radix over the spatial loops above it, the innermost fastest,
        as the engine numbers instances): whether the instance is utilised (not idle)."""
        if self.parts:
            raise ValueError("a nest run in parts has no single set of utilised instances; see its parts")
        return self._active_masks[level]

    @functools.cached_property
    def _active_masks(self) -> tuple[np.ndarray, ...]:
        masks = []
        for level in range(len(self.level_start)):
            active = self.utilised_combinations(tuple(l for l in self.loops_above(level) if l.axis is not None))
            active.flags.writeable = False
            masks.append(active)
        return tuple(masks)

    def utilised_combinations(self, spatial: tuple[NestLoop, ...]) -> np.ndarray:
        """Per combination of the spatial loops ``spatial`` (outer to inner, the innermost varying
        fastest; the loops not listed at index 0): whether the instance it reaches is utilised. A
        dimension's remainder loops all sit at one fan-out, so loops not listed cannot idle it."""
        active = np.ones(math.prod(l.bound for l in spatial), np.bool_)
        for d, size in self.guarded:
            base = np.zeros(1, np.int64)
            for loop in spatial:
                step = loop.step if loop.dim == d else 0
                base = (base[:, None] + np.arange(loop.bound, dtype=np.int64) * step).ravel()
            active &= base < size
        return active

    def instances(self, level: int) -> int:
        """Utilised instances of a level: the slots the spatial loops above it address, less the
        idle ones of a spatial remainder (run in parts: the most any part uses)."""
        if self.parts:
            return max(part.instances(level) for part, _, _ in self.parts)
        if not self.guarded:
            return self.slots(level)
        return int(self.active_mask(level).sum())

    @property
    def total_spatial(self) -> int:
        """Utilised PEs (instances of the innermost level)."""
        return self.instances(len(self.level_start) - 1)

    @property
    def temporal_steps(self) -> int:
        return math.prod(l.bound for l in self.loops if l.axis is None)


def dim_sizes(dims: LoopDims) -> dict[str, int]:
    return {d: getattr(dims, d) for d in DIMS}


def build_nest(
    dims: LoopDims, arch: Architecture, mapping: Mapping, *, layer_name: str = "layer", check_capacity_fit: bool = True
) -> Nest:
    """Flatten and validate a mapping. Raises MappingError naming the failed constraint.
    ``check_capacity_fit=False`` skips only the capacity check (for mappers exploring candidates)."""
    where = f"layer {layer_name!r} on {arch.name!r}"
    names = [lm.level for lm in mapping.levels]
    arch_names = [level.name for level in arch.levels]
    if names != arch_names:
        raise MappingError(f"{where}: mapping levels {names} must be the architecture's levels {arch_names}, in order")
    flat: list[tuple[str, int, str | None, int]] = []
    level_start = []
    for index, lm in enumerate(mapping.levels):
        level_start.append(len(flat))
        for loop in (*lm.temporal, *lm.spatial):
            if loop.dim not in DIMS:
                raise MappingError(f"{where}: level {lm.level!r} has a loop over unknown dimension {loop.dim!r}; dimensions: {DIMS}")
            if not isinstance(loop.bound, int) or loop.bound < 1:
                raise MappingError(f"{where}: level {lm.level!r} loop {loop.dim} has bound {loop.bound!r}; bounds are integers >= 1")
        for loop in lm.temporal:
            if loop.axis is not None:
                raise MappingError(f"{where}: level {lm.level!r} lists a spatial loop among its temporal loops")
            flat.append((loop.dim, loop.bound, None, index))
        if lm.spatial:
            if index + 1 >= len(arch.levels) or arch.levels[index + 1].fanout == 1:
                raise MappingError(
                    f"{where}: level {lm.level!r} has spatial loops but no fan-out below it "
                    f"(spatial loops belong to the level just above the PE array)"
                )
            child = arch.levels[index + 1]
            for axis, limit in (("X", child.fanout_x), ("Y", child.fanout_y)):
                used = math.prod(l.bound for l in lm.spatial if l.axis == axis)
                if used > limit:
                    raise MappingError(
                        f"{where}: spatial-{axis} loops below {lm.level!r} use {used} instances, "
                        f"the fan-out has {limit}"
                    )
            for loop in lm.spatial:
                if loop.axis not in AXES:
                    raise MappingError(f"{where}: spatial loop {loop.dim} below {lm.level!r} has axis {loop.axis!r}; use 'X' or 'Y'")
                flat.append((loop.dim, loop.bound, loop.axis, index))
    sizes = dim_sizes(dims)
    outermost = next((position for position, (_, b, _, _) in enumerate(flat) if b > 1), None)
    for d in DIMS:
        product = math.prod(b for dim, b, _, _ in flat if dim == d)
        if (product > sizes[d] and outermost is not None and flat[outermost][0] == d
                and flat[outermost][2] is None):
            parts = _remainder_parts(dims, arch, mapping, flat, outermost, layer_name, check_capacity_fit, where)
            return Nest(dims=dims, loops=_nest_loops(flat), level_start=tuple(level_start), mapping=mapping,
                        parts=parts)
        if product < sizes[d]:
            raise MappingError(
                f"{where}: the loops over {d} multiply to {product} but the layer has {d}={sizes[d]}; "
                f"bounds of each dimension must multiply exactly to it"
            )
        if product > sizes[d]:
            problem = _remainder_problem([(b, axis, level) for dim, b, axis, level in flat if dim == d and b > 1],
                                         sizes[d])
            if problem:
                raise MappingError(
                    f"{where}: the loops over {d} multiply to {product} but the layer has {d}={sizes[d]}; "
                    f"{problem}. Bounds of each dimension must multiply exactly to it, or over-cover it "
                    f"with a spatial remainder (the outermost loops over {d} spatial loops of one "
                    f"fan-out, the loops over {d} inside them multiplying to a divisor of {sizes[d]}, and "
                    f"the outermost bound the fewest that covers {d}={sizes[d]}) or a temporal remainder "
                    f"(the nest's outermost loop over {d}, for an output dimension)"
                )
    nest = Nest(dims=dims, loops=_nest_loops(flat), level_start=tuple(level_start), mapping=mapping)
    if check_capacity_fit:
        check_capacity(nest, arch, where)
    return nest


def _nest_loops(flat: list[tuple[str, int, str | None, int]]) -> tuple[NestLoop, ...]:
    loops = []
    for position, (d, bound, axis, level) in enumerate(flat):
        step = math.prod(b for dim, b, _, _ in flat[position + 1:] if dim == d)
        loops.append(NestLoop(dim=d, bound=bound, axis=axis, level=level, step=step))
    return tuple(loops)


# Dimensions that index the outputs: parts split along one of them write disjoint outputs.
OUTPUT_DIMS = ("N", "G", "M", "P", "Q")


def part_dims(dims: LoopDims, dim: str, size: int) -> LoopDims:
    """The layer restricted to ``size`` indices of ``dim`` (input rows/columns follow P/Q)."""
    sizes = {**dims._asdict(), dim: size}
    sizes["H"] = (sizes["P"] - 1) * sizes["stride"] + sizes["R"]
    sizes["W"] = (sizes["Q"] - 1) * sizes["stride"] + sizes["S"]
    return LoopDims(**sizes)


def _with_bounds(mapping: Mapping, changes: dict[tuple[int, str, int], int]) -> Mapping:
    """The mapping with the loops at (level index, "temporal"/"spatial", position) re-bounded."""
    levels = []
    for li, lm in enumerate(mapping.levels):
        temporal = tuple(Loop(l.dim, changes.get((li, "temporal", k), l.bound), l.axis) for k, l in enumerate(lm.temporal))
        spatial = tuple(Loop(l.dim, changes.get((li, "spatial", k), l.bound), l.axis) for k, l in enumerate(lm.spatial))
        levels.append(LevelMapping(level=lm.level, temporal=temporal, spatial=spatial))
    return Mapping(levels=tuple(levels), source=mapping.source)


def _remainder_parts(dims: LoopDims, arch: Architecture, mapping: Mapping, flat: list, outermost: int,
                     layer_name: str, check_capacity_fit: bool, where: str) -> tuple[tuple["Nest", str, int], ...]:
    """The two parts of a temporal remainder (module docstring), each validated by ``build_nest``."""
    d, bound = flat[outermost][0], flat[outermost][1]
    size = getattr(dims, d)
    inner_loops = [p for p in range(outermost + 1, len(flat)) if flat[p][0] == d and flat[p][1] > 1]
    inner = math.prod(flat[p][1] for p in inner_loops)
    rule = (f"{where}: the loops over {d} multiply to {bound * inner} but the layer has {d}={size}; a "
            f"temporal remainder (the nest's outermost loop over-covering its dimension: full passes, "
            f"then a remainder pass) ")
    if d not in OUTPUT_DIMS:
        raise MappingError(rule + f"needs a dimension of the outputs ({', '.join(OUTPUT_DIMS)}): parts over "
                           f"{d} would each hold partial sums of the same outputs")
    if -(-size // inner) != bound:
        raise MappingError(rule + f"needs the outermost bound to be the fewest passes that cover {d}: "
                           f"ceil({size} / {inner}) = {-(-size // inner)}, not {bound}")
    # where each loop of the flattened nest sits in the mapping: (level, list, position)
    where_is = []
    for li, lm in enumerate(mapping.levels):
        where_is += [(li, "temporal", k) for k in range(len(lm.temporal))]
        where_is += [(li, "spatial", k) for k in range(len(lm.spatial))]
    remainder = size - (bound - 1) * inner
    full = _with_bounds(mapping, {where_is[outermost]: bound - 1})
    last_changes = {where_is[outermost]: 1}
    if inner_loops:  # the remainder pass: the next loop over d covers what is left
        rest = math.prod(flat[p][1] for p in inner_loops[1:])
        last_changes[where_is[inner_loops[0]]] = -(-remainder // rest)
    last = _with_bounds(mapping, last_changes)
    parts = []
    for part_mapping, part_size, first, label in ((full, (bound - 1) * inner, 0, "full passes"),
                                                  (last, remainder, (bound - 1) * inner, "remainder pass")):
        try:
            nest = build_nest(part_dims(dims, d, part_size), arch, part_mapping, layer_name=layer_name,
                              check_capacity_fit=check_capacity_fit)
        except MappingError as exc:
            raise MappingError(rule + f"needs its {label} ({d}={part_size}) to be a valid mapping: {exc}") from None
        parts.append((nest, d, first))
    return tuple(parts)


def _remainder_problem(loops: list[tuple[int, str | None, int]], size: int) -> str | None:
    """Why the loops (bound, axis, level) of one dimension, outer to inner, are not a valid spatial
    remainder of a dimension of ``size`` (None when they are)."""
    spatial = 0
    while spatial < len(loops) and loops[spatial][1] is not None:
        spatial += 1
    if spatial == 0:
        return "its outermost loop is temporal (a remainder needs spatial outermost loops, leaving PEs idle)"
    if len({level for _, _, level in loops[:spatial]}) > 1:
        return "its outermost spatial loops belong to different fan-outs"
    if any(axis is not None for _, axis, _ in loops[spatial:]):
        return "a temporal loop lies between its spatial loops"
    inner = math.prod(b for b, _, _ in loops[spatial:])
    if size % inner:
        return f"the loops inside the spatial ones multiply to {inner}, which does not divide {size}"
    outer = loops[0][0]
    per_value = math.prod(b for b, _, _ in loops[1:])
    if (outer - 1) * per_value >= size:
        return f"the outermost loop's last value (of {outer}) would leave every PE it addresses idle"
    return None


def check_capacity(nest: Nest, arch: Architecture, where: str) -> None:
    problem = capacity_violation(nest, arch)
    if problem:
        raise MappingError(f"{where}: {problem}")


def capacity_violation(nest: Nest, arch: Architecture) -> str | None:
    """The first level whose tiles do not fit, as a sentence; None when every tile fits."""
    from sim.model import tile_words  # the model owns footprint arithmetic

    for part, d, _ in nest.parts:
        problem = capacity_violation(part, arch)
        if problem:
            return f"{problem} (in the part with {d}={getattr(part.dims, d)})"

    for index, level in enumerate(arch.levels):
        if level.capacity_words is None:
            continue
        words = {d: tile_words(nest, index, d) for d in level.keeps}
        shared = 0
        for d, w in words.items():
            if d in level.partition_words:
                if w > level.partition_words[d]:
                    return (f"the {d} tile at {level.name!r} is {w} words; its partition holds "
                            f"{level.partition_words[d]}")
            else:
                shared += w
        room = level.capacity_words - sum(level.partition_words.values())
        if shared > room:
            detail = ", ".join(f"{d} {w}" for d, w in words.items() if d not in level.partition_words)
            return f"tiles at {level.name!r} need {shared} words ({detail}); it holds {room}"
    return None


# ------------------------------------------------------------------------------------------------
# Mapping files
# ------------------------------------------------------------------------------------------------
def mapping_from_dict(spec: dict, *, source: str) -> Mapping:
    levels = []
    for position, entry in enumerate(spec.get("level", [])):
        unknown = set(entry) - {"name", "temporal", "spatial"}
        if unknown:
            raise MappingError(f"{source}: level[{position}] has unknown keys {sorted(unknown)}; allowed: name, temporal, spatial")
        if "name" not in entry:
            raise MappingError(f"{source}: level[{position}] needs a name")
        temporal = []
        for item in entry.get("temporal", []):
            if not (isinstance(item, list) and len(item) == 2):
                raise MappingError(f"{source}: level {entry['name']!r} temporal loop {item!r}: write [\"DIM\", bound]")
            temporal.append(Loop(str(item[0]), item[1]))
        spatial = []
        for item in entry.get("spatial", []):
            if not (isinstance(item, list) and len(item) == 3):
                raise MappingError(f"{source}: level {entry['name']!r} spatial loop {item!r}: write [\"DIM\", bound, \"X\" or \"Y\"]")
            spatial.append(Loop(str(item[0]), item[1], str(item[2])))
        levels.append(LevelMapping(level=entry["name"], temporal=tuple(temporal), spatial=tuple(spatial)))
    return Mapping(levels=tuple(levels), source=source)


def load_mapping(path: str | Path, arch: Architecture) -> Mapping:
    """Read a mapping TOML file. Levels not listed get no loops. Format::

        [[level]]
        name = "DRAM"
        temporal = [["Q", 4], ["C", 4], ["P", 7], ["M", 4]]     # outer to inner
        [[level]]
        name = "shared_glb"
        temporal = [["M", 2], ["C", 4], ["P", 8]]
        spatial = [["Q", 14, "X"], ["M", 4, "Y"], ["S", 3, "Y"]] # the fan-out below this level
    """
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"{path}: no such mapping file")
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(spec) - {"level"}
    if unknown:
        raise MappingError(f"{path}: unknown top-level keys {sorted(unknown)}; a mapping file has only [[level]] tables")
    given = mapping_from_dict(spec, source=str(path))
    by_name = {lm.level: lm for lm in given.levels}
    arch_names = [level.name for level in arch.levels]
    stray = set(by_name) - set(arch_names)
    if stray:
        raise MappingError(f"{path}: levels {sorted(stray)} are not in architecture {arch.name!r}; its levels: {arch_names}")
    return Mapping(levels=tuple(by_name.get(n, LevelMapping(level=n)) for n in arch_names), source=str(path))


def mapping_from_loops(arch: Architecture, loops: dict[str, Iterable[tuple]], *, source: str = "python") -> Mapping:
    """Build a mapping from ``{level_name: [(dim, bound) or (dim, bound, axis), ...]}``; loops with an
    axis go to the spatial list. Levels not named get no loops."""
    levels = []
    for level in arch.levels:
        temporal, spatial = [], []
        for item in loops.get(level.name, ()):
            (spatial if len(item) == 3 else temporal).append(Loop(*item))
        levels.append(LevelMapping(level=level.name, temporal=tuple(temporal), spatial=tuple(spatial)))
    unknown = set(loops) - {level.name for level in arch.levels}
    if unknown:
        raise MappingError(f"{source}: levels {sorted(unknown)} are not in architecture {arch.name!r}")
    return Mapping(levels=tuple(levels), source=source)


__all__ = [
    "AXES", "DATA_TYPES", "DIMS", "RELEVANT_DIMS", "Loop", "LevelMapping", "Mapping", "MappingError",
    "Nest", "NestLoop", "build_nest", "load_mapping", "mapping_from_loops",
]
