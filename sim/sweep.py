"""Design-space sweeps: many (architecture, network, batch, mapping policy) points, resumable, on
local processes or a Dask cluster, collected into one ``summary.csv``.

A sweep file (TOML) names a base hardware config, the fields to vary by their dotted config path,
the networks, batch sizes, mapping policies, an objective and constraints::

    format_version = 1                     # required, must be 1
    name = "pe_array_x_rf"                 # required: names the default output directory
    description = "..."                    # optional
    base = "eyeriss_v1"                    # required: preset name or TOML path (relative to this file)
    networks = ["alexnet"]                 # required: zoo names or .onnx paths (relative to this file)
    batch = [1]                            # optional, default [1]: an integer or a list
    mapping = ["default"]                  # optional, default ["default"]: mapping policies (MAPPING_POLICIES)
    method = "model"                       # optional: "model" (closed form, default) or "engine"
    objective = "energy"                   # optional: "energy", "energy_per_mac", "cycles" or "edp"

    [vary]                                 # dotted config paths -> values; the sweep is their product
    "level[ifmap_spad].fanout_x" = [7, 14, 28]                       # a list
    "level[filter_spad].capacity_words" = { start = 64, stop = 256, step = 64 }   # stop included
    "level[global_buffer].capacity_words" = { start = 8192, stop = 65536, factor = 2 }  # geometric

    [area]                                 # optional: linear area estimate (needed by area constraints)
    unit = "mm2"
    per_pe = 0.01                          # area of one PE's datapath (MAC and control)
    per_word = { register_file = 1e-4, global_buffer = 2e-5 }   # per word of capacity, by level class
    source = "..."                         # required: where the coefficients come from

    [constraints]                          # optional
    max_pes = 1024                         # drop points with more PEs
    max_area = 2.0                         # drop points whose area estimate is larger (needs [area])
    equal_area = { adjust = "level[global_buffer].capacity_words", multiple_of = 256 }
                                           # size this capacity so each point's area matches the
                                           # base config's (rounded down to a multiple); points
                                           # with no room left are dropped

A path addresses a key of the hardware config as the loader names it (``clock_mhz``,
``word_bits.inputs``, ``mac.energy_per_mac``, ``zero_handling.inputs``, ``level[2].capacity_words``,
``level[global_buffer].partition_words.weights``); a level may be given by position or by name.
Everything is checked before any point runs: unknown paths (with the closest valid one), empty
ranges, values of the wrong type (every resolved point goes through the config loader).

Each point is identified by a hash of its resolved inputs (the full hardware config after the
overrides, the network, batch, mapping policy, method and ``POINT_FORMAT``) and written, when done,
to ``DIR/points/<hash>.json`` atomically; a re-run skips points whose file exists. ``summary.csv``
is rebuilt from the point files in the sweep's own point order, so an interrupted and resumed
sweep writes the same bytes as an uninterrupted one, whichever executor ran the points.

Public API::

    load_sweep(path) -> Sweep            # parse and validate, resolve every point (no simulation)
    run_sweep(sweep, out_dir, *, method=None, workers=None, scheduler=None, progress=True) -> DataFrame
    evaluate_point(task) -> dict         # one point's metrics (what executors run)
    layer_mapping(dims, arch, policy, layer_name) -> Mapping   # where a mapping policy is applied
    summary_table(sweep, out_dir) -> DataFrame
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping as MappingABC
from pathlib import Path
from typing import Any

import pandas as pd

from networks.layers import LoopDims
from sim.arch import DATA_TYPES, DATAFLOWS, OPERANDS, Architecture
from sim.config import _LEVEL_KEYS, _MAC_KEYS, _TOP_KEYS, load_architecture, parse_architecture
from sim.energy import DATA_TYPE_CLASSES, LEVEL_CLASSES, level_class
from sim.errors import ConfigError
from sim.mapping import Mapping, MappingError
from sim.results import atomic_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Bumped whenever what a point computes or stores changes: old point files then no longer match.
POINT_FORMAT = 2  # 2: cycles from the timing model (bandwidth stalls), mapper policies
# "search" is the mapper (sim/mapper.py) under the config's dataflow; "search:WS" etc. under a named one.
MAPPING_POLICIES = ("default", "row_stationary", "search", *(f"search:{flow}" for flow in DATAFLOWS))
METHODS = ("model", "engine")
OBJECTIVES = {"energy": "energy_total", "energy_per_mac": "energy_per_mac", "cycles": "cycles_total", "edp": "edp"}
AREA_LEVEL_CLASSES = ("register_file", "global_buffer")

_SWEEP_KEYS = ("format_version", "name", "description", "base", "networks", "batch", "mapping",
               "method", "objective", "vary", "area", "constraints")
_AREA_KEYS = ("unit", "per_pe", "per_word", "source")
_CONSTRAINT_KEYS = ("max_pes", "max_area", "equal_area")
_EQUAL_AREA_KEYS = ("adjust", "multiple_of")
_RANGE_KEYS = ("start", "stop", "step", "factor")
# Sub-tables of a config whose keys are fixed, and the keys they allow.
_SUBTABLE_KEYS = {"word_bits": DATA_TYPES, "mac": _MAC_KEYS, "zero_handling": OPERANDS,
                  "dram_compression": DATA_TYPES}
_NOT_VARIABLE = ("format_version", "level", "word_bits", "mac", "zero_handling", "dram_compression")

ENERGY_BY_LEVEL = [f"energy_{cls.lower()}" for cls in LEVEL_CLASSES]
ENERGY_BY_DATA_TYPE = [f"energy_{name}" for name in DATA_TYPE_CLASSES.values()]
# Columns of summary.csv after the point's identity and its varied fields.
METRIC_COLUMNS = [
    "status", "layers_simulated", "macs_dense", "cycles_total", "latency_s", "pes", "pe_utilization",
    "energy_total", *ENERGY_BY_LEVEL, *ENERGY_BY_DATA_TYPE, "energy_per_mac", "edp", "energy_unit",
    "area", "area_unit",
]
IDENTITY_COLUMNS = ["point", "network", "batch", "mapping", "method"]


# ------------------------------------------------------------------------------------------------
# The sweep file
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FieldPath:
    """A dotted config path as written (``text``) and resolved to keys (``keys``: strings, and the
    level's index after ``"level"``)."""

    text: str
    keys: tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class AreaModel:
    unit: str
    per_pe: float
    per_word: dict[str, float]
    source: str

    def area(self, arch: Architecture) -> float:
        total = self.per_pe * arch.mac_units
        for index, level in enumerate(arch.levels[1:], start=1):
            if level.capacity_words is not None:
                total += self.per_word[level_class(arch, index)] * level.capacity_words * arch.instances(index)
        return total


@dataclasses.dataclass(frozen=True)
class PointTask:
    """Everything one point needs, as plain data (it travels to worker processes)."""

    key: str  # hash of the resolved inputs: the point file's name
    config: dict  # the resolved raw hardware config
    source_file: str
    network: str  # zoo name or absolute .onnx path
    batch: int
    mapping: str
    method: str
    area: float | None
    area_unit: str


@dataclasses.dataclass(frozen=True)
class Point:
    task: PointTask
    varied: dict[str, Any]  # config path -> value, as written in the sweep file (before equal area)
    adjusted: dict[str, Any]  # config path -> value set by equal_area


@dataclasses.dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    source_file: str
    base: str
    method: str
    objective: str
    vary: tuple[FieldPath, ...]
    adjusted: tuple[FieldPath, ...]
    points: tuple[Point, ...]
    excluded: dict[str, int]  # reason -> points dropped by constraints
    area_model: AreaModel | None
    text: str  # the sweep file, copied into the output directory

    def with_method(self, method: str) -> "Sweep":
        """The same sweep run with another counting method (new point hashes)."""
        if method == self.method:
            return self
        points = tuple(dataclasses.replace(p, task=_with_key(dataclasses.replace(p.task, method=method)))
                       for p in self.points)
        return dataclasses.replace(self, method=method, points=points)

    @property
    def columns(self) -> list[str]:
        fields = [f.text for f in self.vary] + [f.text for f in self.adjusted if f.text not in {v.text for v in self.vary}]
        return IDENTITY_COLUMNS + fields + METRIC_COLUMNS


class _Reader:
    """Validation of one sweep file; every failure raises ConfigError naming file, field, value."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, field: str, value: Any, problem: str) -> ConfigError:
        shown = json.dumps(value, default=str)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return ConfigError(f"{self.file}: {field} = {shown}: {problem}", file=self.file, field=field, value=value)

    def missing(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.file}: {field} is missing: {problem}", file=self.file, field=field)

    def keys(self, table: MappingABC, allowed: tuple[str, ...], prefix: str) -> None:
        for key, value in table.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.fail(f"{prefix}{key}", value, f"unknown key; {hint}allowed keys: {', '.join(allowed)}")

    def string(self, table: MappingABC, key: str, *, default: str | None = None, prefix: str = "") -> str:
        if key not in table:
            if default is None:
                raise self.missing(prefix + key, "needs a non-empty string")
            return default
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(prefix + key, value, "must be a non-empty string")
        return value

    def choice(self, table: MappingABC, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.string(table, key, default=default)
        if value not in allowed:
            close = difflib.get_close_matches(value, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail(key, value, f"{hint}must be one of {', '.join(allowed)}")
        return value

    def number(self, table: MappingABC, key: str, prefix: str, *, integer: bool = False) -> float | int:
        value = table[key]
        kinds = (int,) if integer else (int, float)
        if type(value) not in kinds or not math.isfinite(value) or value <= 0:
            what = "a positive integer" if integer else "a positive number"
            raise self.fail(prefix + key, value, f"must be {what}")
        return value

    def string_list(self, table: MappingABC, key: str, default: list[str] | None) -> list[str]:
        if key not in table:
            if default is None:
                raise self.missing(key, "needs a non-empty list of strings")
            return default
        value = table[key]
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(key, table[key], "must be a non-empty list of non-empty strings")
        if len(set(value)) != len(value):
            raise self.fail(key, value, "lists a value twice")
        return value

    def batches(self, table: MappingABC) -> list[int]:
        value = table.get("batch", [1])
        value = [value] if type(value) is int else value
        if isinstance(value, MappingABC):
            value = self.values("batch", value)
        if (not isinstance(value, list) or not value
                or not all(type(v) is int and v >= 1 for v in value)):
            raise self.fail("batch", table.get("batch"), "must be an integer >= 1, a non-empty list of them or a range")
        if len(set(value)) != len(value):
            raise self.fail("batch", value, "lists a value twice")
        return value

    def values(self, field: str, spec: Any) -> list:
        """The values of one [vary] entry: a non-empty list, or a range table."""
        if isinstance(spec, list):
            if not spec:
                raise self.fail(field, spec, "empty list: give at least one value")
            return spec
        if not isinstance(spec, MappingABC):
            raise self.fail(field, spec, "must be a list of values or a range "
                            "{ start = A, stop = B, step = S } or { start = A, stop = B, factor = F }")
        self.keys(spec, _RANGE_KEYS, f"{field}.")
        for key in ("start", "stop"):
            if key not in spec:
                raise self.missing(f"{field}.{key}", "a range needs start, stop and one of step or factor")
            if type(spec[key]) not in (int, float):
                raise self.fail(f"{field}.{key}", spec[key], "must be a number")
        if ("step" in spec) == ("factor" in spec):
            raise self.fail(field, spec, "a range needs exactly one of step (arithmetic) or factor (geometric)")
        start, stop = spec["start"], spec["stop"]
        integer = type(start) is int and type(stop) is int
        if "step" in spec:
            step = spec["step"]
            if type(step) not in (int, float) or not step > 0:
                raise self.fail(f"{field}.step", step, "must be a number > 0")
            integer = integer and type(step) is int
            count = math.floor((stop - start) / step + 1e-9) + 1
            values = [start + i * step for i in range(max(count, 0))]
        else:
            factor = spec["factor"]
            if type(factor) not in (int, float) or not factor > 1:
                raise self.fail(f"{field}.factor", factor, "must be a number > 1")
            if not start > 0:
                raise self.fail(f"{field}.start", start, "a geometric range needs start > 0")
            integer = integer and type(factor) is int
            values, value = [], start
            while value <= stop * (1 + 1e-12):
                values.append(value)
                value = value * factor
        if not values:
            raise self.fail(field, spec, f"empty range: start {start} is above stop {stop}")
        if not integer:
            values = [float(round(v, 12)) for v in values]
        if len(values) > 100_000:
            raise self.fail(field, spec, f"{len(values)} values: more than 100000")
        return values


def _level_names(data: MappingABC) -> list[str]:
    levels = data.get("level")
    if not isinstance(levels, list):
        return []
    return [level.get("name") if isinstance(level, MappingABC) else None for level in levels]


def _valid_paths(data: MappingABC) -> list[str]:
    paths = [key for key in _TOP_KEYS if key not in _NOT_VARIABLE]
    for table, keys in _SUBTABLE_KEYS.items():
        paths += [f"{table}.{key}" for key in keys]
    for name in _level_names(data):
        paths += [f"level[{name}].{key}" for key in _LEVEL_KEYS if key != "partition_words"]
        paths += [f"level[{name}].partition_words.{d}" for d in DATA_TYPES]
    return paths


_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([^\]]+)\])?$")


def parse_field_path(text: str, base: MappingABC, reader: _Reader, where: str) -> FieldPath:
    """Resolve ``text`` against the base config's schema; an unknown path names the closest."""
    def unknown(problem: str) -> ConfigError:
        close = difflib.get_close_matches(text, _valid_paths(base), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return ConfigError(f"{reader.file}: {where} {text!r}: {problem}; {hint}a path names a hardware-config key, "
                           "e.g. level[global_buffer].capacity_words, word_bits.inputs, clock_mhz",
                           file=reader.file, field=text, value=text)

    segments = text.split(".")
    matches = [_SEGMENT.match(s) for s in segments]
    if not all(matches):
        raise unknown("not a dotted path of keys")
    head, index = matches[0].group(1), matches[0].group(2)
    if head == "level":
        names = _level_names(base)
        if index is None or len(segments) < 2:
            raise unknown("a level field needs the level and a key: level[NAME or INDEX].KEY")
        if index.isdigit():
            position = int(index)
            if position >= len(names):
                raise unknown(f"the base config has {len(names)} levels (0..{len(names) - 1})")
        elif index in names:
            position = names.index(index)
        else:
            raise unknown(f"no level named {index!r} in the base config (levels: {', '.join(map(str, names))})")
        rest = [m.group(1) for m in matches[1:]]
        if any(m.group(2) for m in matches[1:]):
            raise unknown("only the level takes an index")
        if rest[0] == "partition_words":
            if len(rest) != 2 or rest[1] not in DATA_TYPES:
                raise unknown(f"partition_words takes one of {', '.join(DATA_TYPES)}")
        elif len(rest) != 1 or rest[0] not in _LEVEL_KEYS:
            raise unknown("unknown level key")
        return FieldPath(text, ("level", position, *rest))
    if index is not None:
        raise unknown("only level takes an index")
    keys = [m.group(1) for m in matches]
    if len(keys) == 1 and keys[0] in _TOP_KEYS and keys[0] not in _NOT_VARIABLE:
        return FieldPath(text, tuple(keys))
    if len(keys) == 2 and keys[1] in _SUBTABLE_KEYS.get(keys[0], ()):
        return FieldPath(text, tuple(keys))
    raise unknown("unknown config key")


def _set_field(data: dict, path: FieldPath, value: Any) -> None:
    node: Any = data
    keys = path.keys
    for key in keys[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    node[keys[-1]] = value


def _get_field(data: MappingABC, path: FieldPath) -> Any:
    node: Any = data
    for key in path.keys:
        node = node[key]
    return node


def _with_key(task: PointTask) -> PointTask:
    return dataclasses.replace(task, key=point_key(task))


def point_key(task: PointTask) -> str:
    """Hash of a point's resolved inputs (what its metrics depend on)."""
    identity = {"point_format": POINT_FORMAT, "config": task.config, "network": _network_identity(task.network),
                "batch": task.batch, "mapping": task.mapping, "method": task.method,
                "area": task.area, "area_unit": task.area_unit}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@functools.lru_cache(maxsize=64)
def _network_identity(network: str) -> str:
    """What a point's network contributes to its hash: an ONNX file's bytes; a zoo network's name
    and layer shapes (so a changed zoo definition does not reuse stale points)."""
    if network.lower().endswith(".onnx"):
        return "onnx:" + hashlib.sha256(Path(network).read_bytes()).hexdigest()
    from sim.simulate import mac_layers

    net = _network(network)
    shapes = [(name, tuple(net.loop_dims(name))) for name in mac_layers(net)]
    return f"{network}:" + hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16]


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file and resolve every point (no simulation). Raises ConfigError
    naming the file and field for any problem, before any work starts."""
    resolved = Path(path).expanduser().resolve()
    file = str(resolved)
    reader = _Reader(file)
    try:
        text = resolved.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such sweep file", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: TOML syntax error: {exc}", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}", file=file) from None
    reader.keys(data, _SWEEP_KEYS, "")
    if data.get("format_version") != FORMAT_VERSION:
        if "format_version" not in data:
            raise reader.missing("format_version", f"write format_version = {FORMAT_VERSION}")
        raise reader.fail("format_version", data["format_version"], f"must be {FORMAT_VERSION}")
    name = reader.string(data, "name")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise reader.fail("description", description, "must be a string")
    here = resolved.parent

    base_text = reader.string(data, "base")
    base_ref = base_text if ("/" not in base_text and not base_text.endswith(".toml")) else str(here / base_text)
    try:
        base_arch = load_architecture(base_ref)
    except ConfigError as exc:
        raise ConfigError(f"{file}: base = {base_text!r}: {exc}", file=file, field="base", value=base_text) from None
    with open(base_arch.source_file, "rb") as handle:
        base_data = tomllib.load(handle)

    network_refs = []
    for item in reader.string_list(data, "networks", None):
        if item.lower().endswith(".onnx"):
            onnx_path = (here / item).resolve()
            if not onnx_path.is_file():
                raise reader.fail("networks", item, f"no such ONNX file {onnx_path}")
            network_refs.append(str(onnx_path))
        else:
            import networks

            try:
                networks.get(item)
            except Exception as exc:  # networks.get raises NetworkError for unknown names
                raise reader.fail("networks", item, str(exc)) from None
            network_refs.append(item)
    batches = reader.batches(data)
    policies = reader.string_list(data, "mapping", ["default"])
    for policy in policies:
        if policy not in MAPPING_POLICIES:
            close = difflib.get_close_matches(policy, MAPPING_POLICIES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise reader.fail("mapping", policy, f"unknown mapping policy; {hint}available: {', '.join(MAPPING_POLICIES)}")
    method = reader.choice(data, "method", METHODS, "model")
    objective = reader.choice(data, "objective", tuple(OBJECTIVES), "energy")

    vary_table = data.get("vary", {})
    if not isinstance(vary_table, MappingABC):
        raise reader.fail("vary", vary_table, "must be a table of config path = values")
    vary, axes = [], []
    for text_path, spec in vary_table.items():
        if isinstance(spec, MappingABC) and not (set(spec) & set(_RANGE_KEYS)):
            # a dotted key written bare (level.x = ...) arrives as a nested table
            raise ConfigError(f"{file}: [vary] {text_path}: quote each dotted path, e.g. "
                              f"\"{text_path}.{next(iter(spec), 'key')}\" = [...]", file=file, field=text_path)
        field = parse_field_path(text_path, base_data, reader, "[vary]")
        vary.append(field)
        axes.append(reader.values(f"vary.{text_path}", spec))

    area_model = _read_area(data, reader)
    max_pes, max_area, equal_area = _read_constraints(data, reader, base_data, area_model)
    adjusted = (equal_area[0],) if equal_area else ()
    if equal_area and equal_area[0].text in {f.text for f in vary}:
        raise reader.fail("constraints.equal_area.adjust", equal_area[0].text, "is also varied; adjust a field that is not")
    reference_area = area_model.area(base_arch) if area_model else None

    # Resolve every hardware point once (networks, batches and policies share them).
    hardware = []  # (varied values, adjusted values, config, area) per combination
    excluded: dict[str, int] = {}
    for combination in itertools.product(*axes):
        config = copy.deepcopy(base_data)
        for field, value in zip(vary, combination):
            _set_field(config, field, value)
        varied = {field.text: value for field, value in zip(vary, combination)}
        where = ", ".join(f"{k} = {json.dumps(v)}" for k, v in varied.items()) or "the base config"
        adjusted_values = {}
        if equal_area:
            capacity = _equal_area_capacity(config, equal_area, area_model, reference_area, reader, where)
            if capacity is None:
                excluded["equal area: no room left for the adjusted level"] = excluded.get(
                    "equal area: no room left for the adjusted level", 0) + 1
                continue
            _set_field(config, equal_area[0], capacity)
            adjusted_values[equal_area[0].text] = capacity
        arch = _parse(config, base_arch.source_file, file, where)
        if max_pes is not None and arch.mac_units > max_pes:
            excluded[f"max_pes = {max_pes}"] = excluded.get(f"max_pes = {max_pes}", 0) + 1
            continue
        area = area_model.area(arch) if area_model else None
        if max_area is not None and area > max_area * (1 + 1e-12):
            excluded[f"max_area = {max_area}"] = excluded.get(f"max_area = {max_area}", 0) + 1
            continue
        hardware.append((varied, adjusted_values, config, area))

    per_hardware = len(network_refs) * len(batches) * len(policies)
    excluded = {reason: count * per_hardware for reason, count in excluded.items()}
    points = []
    for network, batch, policy, (varied, adjusted_values, config, area) in itertools.product(
            network_refs, batches, policies, hardware):
        task = PointTask(key="", config=config, source_file=base_arch.source_file, network=network, batch=batch,
                         mapping=policy, method=method, area=area, area_unit=area_model.unit if area_model else "")
        points.append(Point(task=_with_key(task), varied=varied, adjusted=adjusted_values))
    if not points:
        raise ConfigError(f"{file}: the constraints leave no point to run (dropped: "
                          f"{', '.join(f'{n} by {r}' for r, n in excluded.items())}); relax [constraints]",
                          file=file, field="constraints")
    keys = [p.task.key for p in points]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{file}: two points resolve to the same inputs (a value is listed twice, or two "
                          "fields set the same key); every point must be distinct", file=file, field="vary")
    return Sweep(name=name, description=description, source_file=file, base=base_text, method=method,
                 objective=objective, vary=tuple(vary), adjusted=adjusted, points=tuple(points),
                 excluded=excluded, area_model=area_model, text=text)


def _parse(config: dict, source_file: str, sweep_file: str, where: str) -> Architecture:
    try:
        return parse_architecture(config, source_file=source_file)
    except ConfigError as exc:
        field = exc.field or ""
        raise ConfigError(f"{sweep_file}: the point {where} is not a valid hardware config: {exc}",
                          file=sweep_file, field=field, value=exc.value) from None


def _read_area(data: MappingABC, reader: _Reader) -> AreaModel | None:
    if "area" not in data:
        return None
    table = data["area"]
    if not isinstance(table, MappingABC):
        raise reader.fail("area", table, "must be a table (unit, per_pe, per_word, source)")
    reader.keys(table, _AREA_KEYS, "area.")
    for key in ("per_pe", "per_word"):
        if key not in table:
            raise reader.missing(f"area.{key}", "the area model needs unit, per_pe, per_word and source")
    per_pe = reader.number(table, "per_pe", "area.")
    per_word = table["per_word"]
    if not isinstance(per_word, MappingABC):
        raise reader.fail("area.per_word", per_word, f"must be a table with {', '.join(AREA_LEVEL_CLASSES)}")
    reader.keys(per_word, AREA_LEVEL_CLASSES, "area.per_word.")
    words = {}
    for cls in AREA_LEVEL_CLASSES:
        if cls not in per_word:
            raise reader.missing(f"area.per_word.{cls}", "give the area of one word of capacity at this level class")
        words[cls] = float(reader.number(per_word, cls, "area.per_word."))
    return AreaModel(unit=reader.string(table, "unit", prefix="area."), per_pe=float(per_pe), per_word=words,
                     source=reader.string(table, "source", prefix="area."))


def _read_constraints(data: MappingABC, reader: _Reader, base: MappingABC, area_model: AreaModel | None):
    table = data.get("constraints", {})
    if not isinstance(table, MappingABC):
        raise reader.fail("constraints", table, "must be a table")
    reader.keys(table, _CONSTRAINT_KEYS, "constraints.")
    max_pes = reader.number(table, "max_pes", "constraints.", integer=True) if "max_pes" in table else None
    max_area = reader.number(table, "max_area", "constraints.") if "max_area" in table else None
    equal_area = None
    if "equal_area" in table:
        spec = table["equal_area"]
        if not isinstance(spec, MappingABC):
            raise reader.fail("constraints.equal_area", spec, "must be { adjust = \"level[NAME].capacity_words\", multiple_of = N }")
        reader.keys(spec, _EQUAL_AREA_KEYS, "constraints.equal_area.")
        adjust = reader.string(spec, "adjust", prefix="constraints.equal_area.")
        field = parse_field_path(adjust, base, reader, "constraints.equal_area.adjust")
        if field.keys[0] != "level" or field.keys[-1] != "capacity_words" or field.keys[1] == 0:
            raise reader.fail("constraints.equal_area.adjust", adjust, "must be the capacity_words of an on-chip level")
        multiple = reader.number(spec, "multiple_of", "constraints.equal_area.", integer=True) if "multiple_of" in spec else 1
        equal_area = (field, multiple)
    if (max_area is not None or equal_area) and area_model is None:
        raise reader.missing("area", "area constraints need an [area] model (unit, per_pe, per_word, source)")
    return max_pes, max_area, equal_area


def _equal_area_capacity(config: dict, equal_area, area_model: AreaModel, reference: float, reader: _Reader,
                         where: str) -> int | None:
    """The adjusted level's capacity that brings the point's area to the reference (rounded down to
    the multiple), or None when even a capacity of one multiple overshoots."""
    field, multiple = equal_area
    level = field.keys[1]
    partitions = sum(config["level"][level].get("partition_words", {}).values())
    smallest = max(multiple, partitions)
    trial = copy.deepcopy(config)
    _set_field(trial, field, smallest)
    arch = _parse(trial, "", reader.file, where)
    per_word = area_model.per_word[level_class(arch, level)] * arch.instances(level)
    room = reference - (area_model.area(arch) - per_word * smallest)
    capacity = math.floor(room / per_word / multiple + 1e-9) * multiple
    if capacity < smallest:
        return None
    return capacity


# ------------------------------------------------------------------------------------------------
# Evaluating a point
# ------------------------------------------------------------------------------------------------
def layer_mapping(dims: LoopDims, arch: Architecture, policy: str, layer_name: str) -> Mapping:
    """The mapping a policy gives one layer. This is the one place mapping policies are applied
    (a mapper's dataflows are added here as further policies)."""
    if policy == "default":
        from sim.default_mapping import default_mapping

        return default_mapping(dims, arch, layer_name=layer_name)
    if policy == "row_stationary":
        from sim.rowstationary import default_row_stationary

        return default_row_stationary(dims, arch, layer_name).mapping
    if policy == "search" or policy.startswith("search:"):
        from sim.mapper import map_layer

        flow = policy.partition(":")[2] or None
        return map_layer(dims, arch, dataflow=flow, layer_name=layer_name).mapping
    raise ValueError(f"unknown mapping policy {policy!r}")  # load_sweep admits only MAPPING_POLICIES


# Per-process caches: a worker evaluates many points, and points often share networks and layers.
_NETWORKS: dict[str, Any] = {}
_LAYER_CACHE: dict[tuple, dict] = {}
_LAYER_CACHE_LIMIT = 20_000


def _network(ref: str):
    import networks

    if ref not in _NETWORKS:
        _NETWORKS[ref] = networks.get(ref)
    return _NETWORKS[ref]


def _layer_metrics(result, arch: Architecture) -> dict:
    counts = result.counts
    return {"macs_dense": int(counts.macs), "cycles_total": int(counts.timing.cycles_total),
            **{k: float(v) for k, v in result.breakdown.items()}}


def _model_layer(dims: LoopDims, arch: Architecture, policy: str, name: str) -> dict:
    """One layer with the closed form: mapping -> counts -> energy (no tables: this is the hot path)."""
    from sim.energy import access_energy_rows, breakdown_of_rows
    from sim.mapping import build_nest
    from sim.model import closed_form_counts

    nest = build_nest(dims, arch, layer_mapping(dims, arch, policy, name), layer_name=name)
    counts = closed_form_counts(nest, arch)
    return {"macs_dense": int(counts.macs), "cycles_total": int(counts.timing.cycles_total),
            **breakdown_of_rows(access_energy_rows(counts, arch))}


def evaluate_point(task: PointTask) -> dict:
    """The metrics of one point (a JSON-ready dict). A layer the mapping policy cannot map makes
    the point ``unmappable`` (its status says which layer and why) rather than failing the sweep."""
    from sim.simulate import mac_layers, simulate_network

    arch = parse_architecture(task.config, source_file=task.source_file)
    network = _network(task.network)
    names = mac_layers(network)
    arch_key = json.dumps(task.config, sort_keys=True, default=str)
    layers: list[dict] = []
    try:
        if task.method == "model":
            for name in names:
                dims = network.loop_dims(name, task.batch)
                cache_key = (arch_key, dims, task.mapping)
                if cache_key not in _LAYER_CACHE:
                    if len(_LAYER_CACHE) >= _LAYER_CACHE_LIMIT:
                        _LAYER_CACHE.clear()
                    _LAYER_CACHE[cache_key] = _model_layer(dims, arch, task.mapping, name)
                layers.append(_LAYER_CACHE[cache_key])
        else:
            mappings = {name: layer_mapping(network.loop_dims(name, task.batch), arch, task.mapping, name)
                        for name in names}
            results = simulate_network(network, arch, batch=task.batch, method="engine", mappings=mappings,
                                       seed=0, progress=False)
            layers = [_layer_metrics(result, arch) for result in results]
    except MappingError as exc:
        return {"status": f"unmappable: {exc}"}
    macs = sum(layer["macs_dense"] for layer in layers)
    cycles = sum(layer["cycles_total"] for layer in layers)
    energy = {key: math.fsum(layer[key] for layer in layers)
              for key in ("energy_total", *ENERGY_BY_LEVEL, *ENERGY_BY_DATA_TYPE)}
    return {
        "status": "ok", "layers_simulated": len(layers), "macs_dense": macs, "cycles_total": cycles,
        "latency_s": cycles / (arch.clock_mhz * 1e6), "pes": arch.mac_units,
        "pe_utilization": macs / (cycles * arch.mac_units) if cycles else 0.0,
        **energy, "energy_per_mac": energy["energy_total"] / macs if macs else 0.0,
        "edp": energy["energy_total"] * cycles, "energy_unit": arch.energy_unit,
    }


def evaluate_chunk(tasks: list[PointTask]) -> list[tuple[str, dict]]:
    return [(task.key, evaluate_point(task)) for task in tasks]


# ------------------------------------------------------------------------------------------------
# Running a sweep
# ------------------------------------------------------------------------------------------------
def _atomic_write(path: Path, text: str) -> None:
    with atomic_file(path) as temp:
        temp.write_text(text, encoding="utf-8")


def _point_file(out_dir: Path, key: str) -> Path:
    return out_dir / "points" / f"{key}.json"


def _read_point(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a foreign or damaged file: the point runs again and replaces it
    if record.get("point_format") != POINT_FORMAT or "metrics" not in record:
        return None
    return record


def _write_point(out_dir: Path, point: Point, metrics: dict) -> None:
    task = point.task
    record = {"point_format": POINT_FORMAT, "key": task.key, "network": task.network, "batch": task.batch,
              "mapping": task.mapping, "method": task.method, "varied": point.varied, "adjusted": point.adjusted,
              "area": task.area, "area_unit": task.area_unit, "metrics": metrics}
    _atomic_write(_point_file(out_dir, task.key), json.dumps(record, sort_keys=True, indent=1) + "\n")


def _exploits_zeros(config: MappingABC) -> bool:
    return any(mode != "none" for table in ("zero_handling", "dram_compression")
               for mode in config.get(table, {}).values())


def _chunks(points: list[Point], size: int) -> list[list[Point]]:
    return [points[i:i + size] for i in range(0, len(points), size)]


def run_sweep(sweep: Sweep, out_dir: str | Path, *, method: str | None = None, workers: int | None = None,
              scheduler: str | None = None, progress: bool = True, chunk_size: int | None = None) -> pd.DataFrame:
    """Run every point not yet finished in ``out_dir``, then rebuild ``summary.csv``; returns it.

    ``scheduler``: the address of a Dask distributed scheduler (``tcp://HOST:PORT``) or a
    ``distributed.Client``; otherwise ``workers`` local processes (default: every core; 1 runs in
    this process)."""
    from tqdm import tqdm

    if method is not None:
        sweep = sweep.with_method(method)
    out = Path(out_dir)
    (out / "points").mkdir(parents=True, exist_ok=True)
    for stale in (out / "points").glob(".*.tmp"):  # a killed run's half-written point: never read
        stale.unlink(missing_ok=True)
    _atomic_write(out / "sweep.toml", sweep.text)
    todo = [p for p in sweep.points if _read_point(_point_file(out, p.task.key)) is None]
    if any(p.task.method == "model" and _exploits_zeros(p.task.config) for p in todo):
        log.warning("the closed-form model counts dense data: the zero handling and DRAM compression of %s are "
                    "not applied (use --engine to count them on real tensors)", sweep.base)
    by_key = {p.task.key: p for p in todo}
    workers = workers or os.cpu_count() or 1
    if chunk_size is None:
        chunk_size = max(1, min(8, len(todo) // (workers * 8) if todo else 1))
    bar = tqdm(total=len(sweep.points), initial=len(sweep.points) - len(todo), unit="point",
               desc=sweep.name, disable=not progress, smoothing=0.1)
    try:
        for key, metrics in _execute(todo, workers=workers, scheduler=scheduler, chunk_size=chunk_size):
            _write_point(out, by_key[key], metrics)
            bar.update(1)
    finally:
        bar.close()
    table = summary_table(sweep, out)
    _atomic_write(out / "summary.csv", table.to_csv(index=False, float_format=None, lineterminator="\n"))
    return table


def _execute(todo: list[Point], *, workers: int, scheduler, chunk_size: int) -> Iterator[tuple[str, dict]]:
    chunks = [[p.task for p in chunk] for chunk in _chunks(todo, chunk_size)]
    if not chunks:
        return
    if scheduler is not None:
        yield from _execute_dask(chunks, scheduler)
    elif workers == 1:
        for chunk in chunks:
            yield from evaluate_chunk(chunk)
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(evaluate_chunk, chunk) for chunk in chunks]
            try:
                for future in as_completed(futures):
                    yield from future.result()
            finally:
                for future in futures:
                    future.cancel()


def _execute_dask(chunks: list[list[PointTask]], scheduler) -> Iterator[tuple[str, dict]]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        from sim.errors import UsageError

        raise UsageError("--scheduler needs dask.distributed: pip install -e \".[dist]\"") from None
    client = scheduler if isinstance(scheduler, Client) else None
    own = client is None
    if own:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise OSError(f"--scheduler {scheduler}: cannot reach the Dask scheduler: {exc}") from None
    try:
        futures = [client.submit(evaluate_chunk, chunk, pure=False) for chunk in chunks]
        try:
            for future in as_completed(futures):
                yield from future.result()
        finally:
            client.cancel(futures)
    finally:
        if own:
            client.close()


# ------------------------------------------------------------------------------------------------
# The summary
# ------------------------------------------------------------------------------------------------
def summary_table(sweep: Sweep, out_dir: str | Path) -> pd.DataFrame:
    """One row per finished point, in the sweep's point order (deterministic)."""
    out = Path(out_dir)
    rows = []
    for point in sweep.points:
        record = _read_point(_point_file(out, point.task.key))
        if record is None:
            continue
        task = point.task
        network = Path(task.network).stem if task.network.lower().endswith(".onnx") else task.network
        row = {"point": task.key, "network": network, "batch": task.batch, "mapping": task.mapping,
               "method": task.method, **point.varied, **point.adjusted}
        metrics = record["metrics"]
        row.update({column: metrics.get(column, float("nan")) for column in METRIC_COLUMNS})
        row["area"] = task.area if task.area is not None else float("nan")
        row["area_unit"] = task.area_unit
        rows.append(row)
    return pd.DataFrame(rows, columns=sweep.columns)


def best_points(table: pd.DataFrame, objective: str, count: int = 10) -> pd.DataFrame:
    """The ``count`` finished points with the lowest objective (ties: sweep order)."""
    column = OBJECTIVES[objective]
    done = table[table.status == "ok"]
    return done.sort_values(column, kind="stable").head(count)
