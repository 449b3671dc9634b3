"""Load and validate hardware configs (TOML) into frozen :class:`sim.arch.Architecture` objects.

This is the only module that reads hwconfig files. Everything is checked once, here; a bad file
raises :class:`sim.errors.ConfigError` whose message names the file, the field (a dotted path such
as ``level[2].capacity_words``), the bad value and what is allowed. Unknown keys are errors that
suggest the closest valid key.

Public API::

    load_architecture(path_or_preset) -> Architecture   # a path, or a preset name ("eyeriss_v1")
    parse_architecture(data, *, source_file) -> Architecture   # from an already-parsed mapping
    list_presets() -> list[str]                          # names of hwconfigs/*.toml
    preset_path(name) -> Path
    PRESETS_DIR, FORMAT_VERSION, ConfigError

File format (version 1). Units are in every field name; energies are in ``energy_unit`` (``"pJ"``,
or ``"MAC"``: normalised to the energy of one MAC)::

    format_version = 1                  # required, must be 1
    name = "eyeriss_v1"                 # required, non-empty
    description = "..."                 # optional, default ""
    clock_mhz = 200.0                   # required, > 0
    energy_unit = "pJ"                  # required: "pJ" or "MAC"
    counting = "timeloop"               # required: "timeloop" or "exact" (see sim/model.py)

    [word_bits]                         # required: bits per word of each data type, all three
    weights = 8
    inputs = 8
    outputs = 16

    [mac]                               # required
    energy_per_mac = 0.207692           # >= 0, energy_unit per MAC
    energy_source = "..."               # required, non-empty: where the number comes from

    [[level]]                           # one table per storage level, outermost (DRAM) first
    name = "DRAM"                       # required, unique
    keeps = ["weights", "inputs", "outputs"]   # required; other data types bypass this level
    # capacity_words                    # optional int >= 1 per instance; omitted = unbounded
    block_words = 8                     # optional int >= 1 (default 1): words per vector access
    read_bandwidth_words_per_cycle = 4.0       # optional, > 0, per instance; omitted = unlimited
    write_bandwidth_words_per_cycle = 4.0      # optional, > 0, per instance; omitted = unlimited
    energy_read_per_access = 512.0      # required, >= 0: one access = block_words words
    energy_fill_per_access = 512.0      # required, >= 0: write of data arriving from the parent
    energy_update_per_access = 512.0    # required, >= 0: write of partial sums from the children
    energy_source = "..."               # source of all three, or per entry: energy_read_source,
                                        # energy_fill_source, energy_update_source (these win)

    [[level]]
    name = "global_buffer"
    keeps = ["weights", "inputs", "outputs"]
    capacity_words = 55296
    partition_words = { weights = 4096 }   # optional: capacity reserved per kept data type
    ...

    [[level]]
    name = "ifmap_spad"
    keeps = ["inputs"]
    capacity_words = 12
    fanout_x = 14                       # optional int >= 1 (default 1): instances per instance
    fanout_y = 12                       #   of the level above (the PE array sits above here)
    multicast = "overlap"               # optional: "identical" (default, Timeloop) or "overlap"
    noc_energy_per_word = 2.0           # optional, >= 0: per word crossing the fan-out above;
    noc_energy_source = "..."           #   needs its own source, and a fan-out > 1

    dataflow = "RS"                     # optional: the dataflow the mapper searches by default,
                                        #   one of RS, WS, OSA, OSB, OSC, NLR, IS (sim/dataflow.py)

    # Timing (sim.timing), all optional:
    # clock_mhz = 60.0                  # clock of the level's ports (default: the core clock);
    #                                   #   bandwidths are words per cycle of this clock
    # shared_read_write_port = true     # reads and writes share read_bandwidth_words_per_cycle
    # double_buffered = ["weights"]     # true, false (default) or kept data types: the next tile
    #                                   #   fills while the current one is used
    # noc_bandwidth_words_per_cycle = { weights = 4.0, inputs = 1.0 }   # fan-out levels only:
    # noc_output_bandwidth_words_per_cycle = 4.0                        #   buses into / out of
    # noc_reduction_bandwidth_words_per_cycle = 4.0                     #   the array, local links

    [timing]                            # optional; both default false
    compute_waits_for_dram = true       # the array stops while inputs load / outputs drain (DRAM)
    pass_ramp_up = true                 # each processing pass starts with an empty array

    [zero_handling]                     # optional; per operand, default "none" (dense)
    weights = "none"                    # "none", "gate" or "skip" (see sim/engine.py)
    inputs = "gate"                     # gate: a zero saves the MAC's energy and the register-
                                        #   file read of the other operand, not the cycle;
                                        # skip: a zero costs neither energy nor a cycle

    [dram_compression]                  # optional; per data type, default "none"
    inputs = "rle"                      # "none", "rle" (Eyeriss run-length coding) or
    outputs = "rle"                     #   "significance_map" (see sim/compression.py); applied
                                        #   per chunk moved between DRAM and its child level

Whole-architecture rules: at least one level; level names unique; every data type kept by some
level; the outermost level keeps all three data types and has no fan-out; partitions only for kept
data types, each (and their sum) at most ``capacity_words``. A compressed data type needs a
level inside DRAM that keeps it (compression applies to the chunks moved between the two), and
``rle`` needs ``word_bits`` of at most 58 (5-bit run + value in a 63-bit word payload).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from sim.arch import (
    COMPRESSION_MODES, COUNTING_MODES, DATA_TYPES, DATAFLOWS, ENERGY_UNITS, MULTICAST_MODES, OPERANDS,
    ZERO_HANDLING_MODES, Architecture, EnergyEntry, StorageLevel, TimingOptions,
)
from sim.compression import RLE_RUN_BITS, RLE_WORD_BITS
from sim.errors import ConfigError

FORMAT_VERSION = 1
PRESETS_DIR = Path(__file__).resolve().parents[1] / "hwconfigs"

_TOP_KEYS = (
    "format_version", "name", "description", "clock_mhz", "energy_unit", "counting", "word_bits",
    "mac", "level", "zero_handling", "dram_compression", "dataflow",
)
_MAC_KEYS = ("energy_per_mac", "energy_source")
_ACTIONS = ("read", "fill", "update")
_LEVEL_KEYS = (
    "name", "keeps", "capacity_words", "partition_words", "block_words", "fanout_x", "fanout_y",
    "multicast", "read_bandwidth_words_per_cycle", "write_bandwidth_words_per_cycle",
    *(f"energy_{action}_per_access" for action in _ACTIONS),
    "energy_source", *(f"energy_{action}_source" for action in _ACTIONS),
    "noc_energy_per_word", "noc_energy_source",
)
# Timing keys (sim.timing), kept apart so the tuples above stay as they were.
_TIMING_KEYS = ("compute_waits_for_dram", "pass_ramp_up")
_LEVEL_TIMING_KEYS = (
    "clock_mhz", "shared_read_write_port", "double_buffered", "noc_bandwidth_words_per_cycle",
    "noc_output_bandwidth_words_per_cycle", "noc_reduction_bandwidth_words_per_cycle",
)
_TOP_KEYS = (*_TOP_KEYS, "timing")
_LEVEL_KEYS = (*_LEVEL_KEYS, *_LEVEL_TIMING_KEYS)
_MISSING = object()


def list_presets() -> list[str]:
    """Names of the shipped presets (``hwconfigs/<name>.toml``), sorted."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.toml"))


def preset_path(name: str) -> Path:
    """Path of a shipped preset; ``ConfigError`` (with the closest names) if there is none."""
    path = PRESETS_DIR / f"{name}.toml"
    if not path.is_file():
        presets = list_presets()
        close = difflib.get_close_matches(name, presets, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"{path}: no preset named {name!r}; {hint}available presets: {', '.join(presets)} "
            "(or give the path of a .toml file)",
            file=str(path), value=name,
        )
    return path


def load_architecture(path: str | Path) -> Architecture:
    """Read, validate and build the architecture of a hardware config.

    ``path`` is a TOML file, or a bare preset name without suffix or directory (``"eyeriss_v1"``),
    resolved to ``hwconfigs/<name>.toml`` in the repository. ``source_file`` of the result is the
    resolved path. Raises ``ConfigError`` for a missing or unreadable file, a TOML syntax error
    (with its line) and every invalid field.
    """
    data, resolved = _read_config_file(path)
    if isinstance(data, Mapping) and data.get("kind") == "systolic":
        raise ConfigError(f"{resolved}: kind = \"systolic\" is a systolic-array config, not a "
                          "storage-level architecture; load it with sim.config.load_hardware "
                          "(eapsim run takes both)", file=str(resolved), field="kind", value="systolic")
    return parse_architecture(data, source_file=str(resolved))


def _read_config_file(path: str | Path) -> tuple[Any, Path]:
    """The parsed TOML of a hardware config (a path or a preset name) and its resolved path."""
    candidate = Path(path)
    if isinstance(path, str) and candidate.suffix == "" and len(candidate.parts) == 1:
        candidate = preset_path(path)
    resolved = candidate.expanduser().resolve()
    if not resolved.is_file():
        what = "is a directory, not a config file" if resolved.is_dir() else "no such config file"
        raise ConfigError(
            f"{resolved}: {what}; give a .toml hardware config or one of the presets: "
            f"{', '.join(list_presets())}",
            file=str(resolved),
        )
    try:
        with resolved.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:  # its message carries "(at line L, column C)"
        raise ConfigError(f"{resolved}: TOML syntax error: {exc}", file=str(resolved)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{resolved}: not UTF-8 text: {exc}", file=str(resolved)) from exc
    except OSError as exc:
        raise ConfigError(f"{resolved}: cannot read: {exc}", file=str(resolved)) from exc
    return data, resolved


def parse_architecture(data: Mapping[str, Any], *, source_file: str) -> Architecture:
    """Validate an already-parsed config (the mapping ``tomllib`` returns) and build it.

    ``source_file`` names the origin in error messages and becomes ``Architecture.source_file``.
    """
    return _Parser(source_file).architecture(data)


def _show(value: Any) -> str:
    """A value as it would be written in TOML, shortened for a message."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value)
    elif isinstance(value, Mapping):
        text = "{ " + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + " }"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


class _Parser:
    """Reads one config; every failure goes through :meth:`fail` so messages share one shape."""

    def __init__(self, file: str) -> None:
        self.file = file

    # -- reporting ------------------------------------------------------------------------------

    def fail(self, field: str, value: Any, problem: str, *, context: str = "") -> NoReturn:
        where = f"{field} ({context})" if context else field
        if value is _MISSING:
            message = f"{self.file}: {where} is missing: {problem}"
            value = None
        else:
            message = f"{self.file}: {where} = {_show(value)}: {problem}"
        raise ConfigError(message, file=self.file, field=field, value=value)

    def check_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], prefix: str,
                   context: str = "") -> None:
        for key, value in table.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail(_join(prefix, key), value,
                          f"unknown key; {hint}allowed keys: {', '.join(allowed)}", context=context)

    # -- typed getters --------------------------------------------------------------------------

    def get(self, table: Mapping[str, Any], key: str, prefix: str, problem: str, *,
            required: bool, context: str = "") -> Any:
        if key in table:
            return table[key]
        if required:
            self.fail(_join(prefix, key), _MISSING, problem, context=context)
        return _MISSING

    def integer(self, table: Mapping[str, Any], key: str, prefix: str, *, minimum: int,
                what: str, required: bool = True, default: Any = None, context: str = "") -> Any:
        allowed = f"an integer >= {minimum} ({what})"
        value = self.get(table, key, prefix, f"needs {allowed}", required=required,
                         context=context)
        if value is _MISSING:
            return default
        if type(value) is not int:  # bool is a subclass of int; floats like 4.0 are not ints
            self.fail(_join(prefix, key), value,
                      f"is a {_kind(value)}, but needs {allowed}; write it without quotes or "
                      "decimal point", context=context)
        if value < minimum:
            self.fail(_join(prefix, key), value, f"must be {allowed}", context=context)
        return value

    def number(self, table: Mapping[str, Any], key: str, prefix: str, *, positive: bool,
               what: str, required: bool = True, context: str = "") -> float | None:
        allowed = f"a finite number {'> 0' if positive else '>= 0'} ({what})"
        value = self.get(table, key, prefix, f"needs {allowed}", required=required,
                         context=context)
        if value is _MISSING:
            return None
        if type(value) not in (int, float):
            self.fail(_join(prefix, key), value,
                      f"is a {_kind(value)}, but needs {allowed}; write it without quotes",
                      context=context)
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            self.fail(_join(prefix, key), value, f"must be {allowed}", context=context)
        return float(value)

    def text(self, table: Mapping[str, Any], key: str, prefix: str, *, what: str,
             required: bool = True, context: str = "") -> str | None:
        value = self.get(table, key, prefix, f"needs {what} (a non-empty string)",
                         required=required, context=context)
        if value is _MISSING:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(_join(prefix, key), value, f"must be {what} (a non-empty string)",
                      context=context)
        return value

    def choice(self, table: Mapping[str, Any], key: str, prefix: str, allowed: tuple[str, ...],
               *, what: str, required: bool = True, default: str | None = None,
               context: str = "") -> str | None:
        options = ", ".join(json.dumps(option) for option in allowed)
        value = self.get(table, key, prefix, f"needs {what}, one of {options}",
                         required=required, context=context)
        if value is _MISSING:
            return default
        if value not in allowed or not isinstance(value, str):
            close = difflib.get_close_matches(str(value), allowed, n=1) if isinstance(
                value, str) else []
            hint = f"; did you mean {json.dumps(close[0])}?" if close else ""
            self.fail(_join(prefix, key), value, f"{what} must be one of {options}{hint}",
                      context=context)
        return value

    def table(self, data: Mapping[str, Any], key: str, prefix: str, *, what: str) -> Mapping:
        value = self.get(data, key, prefix, f"needs the [{_join(prefix, key)}] table ({what})",
                         required=True)
        if not isinstance(value, Mapping):
            self.fail(_join(prefix, key), value, f"must be a table ({what})")
        return value

    # -- the config -----------------------------------------------------------------------------

    def architecture(self, data: Mapping[str, Any]) -> Architecture:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{self.file}: the config must be a table of keys, got "
                              f"{_kind(data)}", file=self.file, value=data)
        if "format_version" not in data:  # a misspelling is reported with a suggestion first
            self.check_keys(data, _TOP_KEYS, "")
        version = self.get(data, "format_version", "", "write format_version = 1 at the top of "
                           "the file", required=True)
        if type(version) is not int or version != FORMAT_VERSION:
            self.fail("format_version", version, f"this loader reads format_version = "
                      f"{FORMAT_VERSION} only")
        self.check_keys(data, _TOP_KEYS, "")
        name = self.text(data, "name", "", what="the architecture's name")
        description = self.text(data, "description", "", what="a description",
                                required=False) or ""
        clock_mhz = self.number(data, "clock_mhz", "", positive=True, what="the core clock in MHz")
        energy_unit = self.choice(data, "energy_unit", "", ENERGY_UNITS,
                                  what="the unit of every energy")
        counting = self.choice(data, "counting", "", COUNTING_MODES,
                               what="the access-counting convention")
        word_bits = self.word_bits(data)
        mac_energy = self.mac(data)
        levels = self.levels(data)
        zero_handling = self.options(data, "zero_handling", OPERANDS, ZERO_HANDLING_MODES,
                                     what="the handling of zero operands")
        compression = self.options(data, "dram_compression", DATA_TYPES, COMPRESSION_MODES,
                                   what="the DRAM compression")
        for data_type, mode in compression.items():
            field = f"dram_compression.{data_type}"
            if mode != "none" and not any(data_type in level.keeps for level in levels[1:]):
                self.fail(field, mode, f"no level inside {levels[0].name!r} keeps {data_type}, so "
                          "no chunks move between DRAM and a child level to compress; keep "
                          f"{data_type} in an inner level or write \"none\"")
            if mode == "rle" and RLE_RUN_BITS + word_bits[data_type] > RLE_WORD_BITS - 1:
                self.fail(field, mode, f"word_bits.{data_type} = {word_bits[data_type]} does not fit "
                          f"a {RLE_RUN_BITS}-bit run and the value in a {RLE_WORD_BITS}-bit RLE word "
                          "(at most 58 bits); use \"significance_map\" or \"none\"")
        dataflow = self.choice(data, "dataflow", "", DATAFLOWS, required=False,
                               what="the dataflow the mapper searches by default (sim/dataflow.py)")
        return Architecture(
            name=name, description=description, source_file=self.file, clock_mhz=clock_mhz,
            energy_unit=energy_unit, counting=counting, word_bits=word_bits, levels=levels,
            mac_energy=mac_energy, zero_handling=zero_handling, dram_compression=compression,
            timing=self.timing_options(data),
            dataflow=dataflow,
        )

    def options(self, data: Mapping[str, Any], key: str, data_types: tuple[str, ...],
                modes: tuple[str, ...], *, what: str) -> dict[str, str]:
        """An optional table of one mode per data type; missing entries are "none"."""
        if key not in data:
            return {data_type: "none" for data_type in data_types}
        table = data[key]
        if not isinstance(table, Mapping):
            self.fail(key, table, f"must be a table of {what} per data type, e.g. "
                      f"{{ {data_types[-1]} = {json.dumps(modes[1])} }}")
        self.check_keys(table, data_types, key)
        return {data_type: self.choice(table, data_type, key, modes, required=False,
                                       default="none", what=f"{what} of {data_type}")
                for data_type in data_types}

    def word_bits(self, data: Mapping[str, Any]) -> dict[str, int]:
        table = self.table(data, "word_bits", "", what="bits per word of each data type")
        self.check_keys(table, DATA_TYPES, "word_bits")
        return {
            data_type: self.integer(table, data_type, "word_bits", minimum=1,
                                    what=f"bits per word of {data_type}")
            for data_type in DATA_TYPES
        }

    def mac(self, data: Mapping[str, Any]) -> EnergyEntry:
        table = self.table(data, "mac", "", what="energy_per_mac and energy_source")
        self.check_keys(table, _MAC_KEYS, "mac")
        energy = self.number(table, "energy_per_mac", "mac", positive=False,
                             what="the energy of one MAC in energy_unit")
        source = self.text(table, "energy_source", "mac",
                           what="where energy_per_mac comes from")
        return EnergyEntry(energy_per_access=energy, source=source)

    def levels(self, data: Mapping[str, Any]) -> tuple[StorageLevel, ...]:
        raw_levels = self.get(data, "level", "", "needs at least one [[level]] table (outermost, "
                              "usually DRAM, first)", required=True)
        if not isinstance(raw_levels, list) or not raw_levels:
            self.fail("level", raw_levels, "must be a non-empty array of tables: write each "
                      "storage level as a [[level]] table, outermost first")
        levels: list[StorageLevel] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(raw_levels):
            level = self.level(raw, index)
            level = dataclasses.replace(level, **self.level_timing(raw, index, level))
            if level.name in seen:
                self.fail(f"level[{index}].name", level.name,
                          f"duplicate level name (also level[{seen[level.name]}]); level names "
                          "must be unique")
            seen[level.name] = index
            levels.append(level)
        for data_type in DATA_TYPES:
            if not any(data_type in level.keeps for level in levels):
                self.fail("level[*].keeps", data_type,
                          "this data type is kept by no level; every data type needs a home, "
                          "normally the outermost level (DRAM) keeps all three")
        outer = levels[0]
        missing = [data_type for data_type in DATA_TYPES if data_type not in outer.keeps]
        if missing:
            self.fail("level[0].keeps", list(outer.keeps),
                      f"the outermost level must keep all three data types {list(DATA_TYPES)} "
                      f"(missing {missing}); list levels outermost (DRAM) first",
                      context=f'level "{outer.name}"')
        if outer.fanout != 1:
            field = "level[0].fanout_x" if outer.fanout_x != 1 else "level[0].fanout_y"
            self.fail(field, outer.fanout_x if outer.fanout_x != 1 else outer.fanout_y,
                      "the outermost level has no level above it to fan out from; put the fan-out "
                      "on the first level inside the array", context=f'level "{outer.name}"')
        return tuple(levels)

    def level(self, raw: Any, index: int) -> StorageLevel:
        prefix = f"level[{index}]"
        if not isinstance(raw, Mapping):
            self.fail(prefix, raw, "must be a table; write each storage level as [[level]]")
        name = raw.get("name")
        context = f'level "{name}"' if isinstance(name, str) and name.strip() else ""
        self.check_keys(raw, _LEVEL_KEYS, prefix, context)
        name = self.text(raw, "name", prefix, what="the level's name")
        kw = {"context": context}

        keeps_raw = self.get(raw, "keeps", prefix, f"needs keeps, a list drawn from "
                             f"{list(DATA_TYPES)}", required=True, **kw)
        if not isinstance(keeps_raw, list) or not keeps_raw:
            self.fail(f"{prefix}.keeps", keeps_raw,
                      f"must be a non-empty list drawn from {list(DATA_TYPES)}", **kw)
        for item in keeps_raw:
            if item not in DATA_TYPES or not isinstance(item, str):
                close = difflib.get_close_matches(str(item), DATA_TYPES, n=1)
                hint = f"; did you mean {json.dumps(close[0])}?" if close else ""
                self.fail(f"{prefix}.keeps", keeps_raw,
                          f"unknown data type {_show(item)}; allowed: {list(DATA_TYPES)}{hint}",
                          **kw)
        if len(set(keeps_raw)) != len(keeps_raw):
            self.fail(f"{prefix}.keeps", keeps_raw, "lists a data type twice", **kw)
        keeps = tuple(data_type for data_type in DATA_TYPES if data_type in keeps_raw)

        capacity = self.integer(raw, "capacity_words", prefix, minimum=1, required=False,
                                what="words per instance; omit the key for an unbounded level",
                                **kw)
        partitions = self.partitions(raw, prefix, keeps, capacity, context)
        block = self.integer(raw, "block_words", prefix, minimum=1, required=False, default=1,
                             what="words per vector access", **kw)
        fanout_x = self.integer(raw, "fanout_x", prefix, minimum=1, required=False, default=1,
                                what="instances per instance of the level above, along X", **kw)
        fanout_y = self.integer(raw, "fanout_y", prefix, minimum=1, required=False, default=1,
                                what="instances per instance of the level above, along Y", **kw)
        multicast = self.choice(raw, "multicast", prefix, MULTICAST_MODES, required=False,
                                default="identical", what="the multicast mode", **kw)
        bandwidths = {
            key: self.number(raw, key, prefix, positive=True, required=False,
                             what="words per cycle per instance; omit the key for unlimited",
                             **kw)
            for key in ("read_bandwidth_words_per_cycle", "write_bandwidth_words_per_cycle")
        }
        energies = {action: self.energy(raw, action, prefix, context) for action in _ACTIONS}
        noc = self.noc_energy(raw, prefix, fanout_x * fanout_y, context)
        return StorageLevel(
            name=name, keeps=keeps, capacity_words=capacity, partition_words=partitions,
            block_words=block, fanout_x=fanout_x, fanout_y=fanout_y, multicast=multicast,
            **bandwidths, energy_read=energies["read"], energy_fill=energies["fill"],
            energy_update=energies["update"], noc_energy_per_word=noc,
        )

    def partitions(self, raw: Mapping[str, Any], prefix: str, keeps: tuple[str, ...],
                   capacity: int | None, context: str) -> dict[str, int]:
        if "partition_words" not in raw:
            return {}
        table = raw["partition_words"]
        field = f"{prefix}.partition_words"
        if not isinstance(table, Mapping):
            self.fail(field, table, "must be a table of words reserved per data type, e.g. "
                      "{ weights = 4096 }", context=context)
        self.check_keys(table, DATA_TYPES, field, context)
        result: dict[str, int] = {}
        for data_type in DATA_TYPES:
            words = self.integer(table, data_type, field, minimum=1, required=False,
                                 what=f"words reserved for {data_type}", context=context)
            if words is None:
                continue
            if data_type not in keeps:
                self.fail(f"{field}.{data_type}", words,
                          f"the level does not keep {data_type} (keeps {list(keeps)}); add it "
                          "to keeps or drop the partition", context=context)
            if capacity is not None and words > capacity:
                self.fail(f"{field}.{data_type}", words,
                          f"larger than capacity_words = {capacity}; a partition is part of the "
                          "level's capacity", context=context)
            result[data_type] = words
        if capacity is not None and sum(result.values()) > capacity:
            self.fail(field, result, f"partitions add up to {sum(result.values())} words, more "
                      f"than capacity_words = {capacity}", context=context)
        return result

    def energy(self, raw: Mapping[str, Any], action: str, prefix: str,
               context: str) -> EnergyEntry:
        key = f"energy_{action}_per_access"
        if key not in raw:
            self.fail(f"{prefix}.{key}", _MISSING,
                      "every level needs energy_read_per_access, energy_fill_per_access and "
                      "energy_update_per_access (energy_unit per access of block_words words; "
                      "write 0.0 if an action is free) and their energy_source", context=context)
        value = self.number(raw, key, prefix, positive=False, context=context,
                            what=f"energy_unit per {action} access of block_words words")
        source_key = f"energy_{action}_source"
        source = self.text(raw, source_key, prefix, required=False, context=context,
                           what=f"where {key} comes from")
        if source is None:
            source = self.text(raw, "energy_source", prefix, required=False, context=context,
                               what="where the level's energies come from")
        if source is None:
            self.fail(f"{prefix}.{source_key}", _MISSING,
                      f"{key} = {_show(value)} has no source; add energy_source (for all three "
                      f"energies) or {source_key}", context=context)
        return EnergyEntry(energy_per_access=value, source=source)

    def noc_energy(self, raw: Mapping[str, Any], prefix: str, fanout: int,
                   context: str) -> EnergyEntry | None:
        value = self.number(raw, "noc_energy_per_word", prefix, positive=False, required=False,
                            what="the energy per word crossing the fan-out above this level",
                            context=context)
        source = self.text(raw, "noc_energy_source", prefix, required=False, context=context,
                           what="where noc_energy_per_word comes from")
        if value is None:
            if source is not None:
                self.fail(f"{prefix}.noc_energy_source", source, "given without "
                          "noc_energy_per_word; add the energy or drop the source",
                          context=context)
            return None
        if source is None:
            self.fail(f"{prefix}.noc_energy_source", _MISSING,
                      f"noc_energy_per_word = {_show(value)} has no source; add "
                      "noc_energy_source", context=context)
        if fanout == 1:
            self.fail(f"{prefix}.noc_energy_per_word", value,
                      "this level has no fan-out (fanout_x * fanout_y = 1), so no words cross "
                      "a NoC above it; put the NoC energy on the level that carries the fan-out",
                      context=context)
        return EnergyEntry(energy_per_access=value, source=source)

    # -- timing (sim.timing) --------------------------------------------------------------------

    def flag(self, table: Mapping[str, Any], key: str, prefix: str, *, what: str,
             context: str = "") -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            self.fail(_join(prefix, key), value, f"must be true or false ({what})", context=context)
        return value

    def timing_options(self, data: Mapping[str, Any]) -> TimingOptions:
        table = data.get("timing", {})
        if not isinstance(table, Mapping):
            self.fail("timing", table, "must be a table, e.g. [timing] with compute_waits_for_dram = "
                      "true")
        self.check_keys(table, _TIMING_KEYS, "timing")
        return TimingOptions(
            compute_waits_for_dram=self.flag(
                table, "compute_waits_for_dram", "timing",
                what="whether the PE array stops while inputs load from or outputs drain to DRAM"),
            pass_ramp_up=self.flag(
                table, "pass_ramp_up", "timing",
                what="whether each processing pass starts with an empty PE array"),
        )

    def level_timing(self, raw: Mapping[str, Any], index: int, level: StorageLevel) -> dict[str, Any]:
        prefix = f"level[{index}]"
        kw = {"context": f'level "{level.name}"'}
        clock = self.number(raw, "clock_mhz", prefix, positive=True, required=False,
                            what="the clock of this level's ports in MHz; omit for the core clock",
                            **kw)
        shared = self.flag(raw, "shared_read_write_port", prefix,
                           what="whether reads and writes share read_bandwidth_words_per_cycle", **kw)
        if shared and level.write_bandwidth_words_per_cycle is not None:
            self.fail(f"{prefix}.write_bandwidth_words_per_cycle", level.write_bandwidth_words_per_cycle,
                      "a shared read-write port has one bandwidth: give only "
                      "read_bandwidth_words_per_cycle", **kw)
        double = raw.get("double_buffered", False)
        field = f"{prefix}.double_buffered"
        if isinstance(double, bool):
            double = list(level.keeps) if double else []
        if not isinstance(double, list) or any(d not in level.keeps for d in double):
            self.fail(field, double, f"must be true, false or a list of data types the level keeps "
                      f"({list(level.keeps)})", **kw)
        noc = raw.get("noc_bandwidth_words_per_cycle", {})
        field = f"{prefix}.noc_bandwidth_words_per_cycle"
        if not isinstance(noc, Mapping):
            self.fail(field, noc, "must be a table of words per cycle per data type, e.g. "
                      "{ weights = 4.0, inputs = 1.0, outputs = 4.0 }", **kw)
        self.check_keys(noc, DATA_TYPES, field, kw["context"])
        buses = {d: self.number(noc, d, field, positive=True, required=False,
                                what=f"words per cycle of the bus carrying {d} into the array", **kw)
                 for d in DATA_TYPES}
        buses = {d: v for d, v in buses.items() if v is not None}
        out = {key: self.number(raw, key, prefix, positive=True, required=False, what=what, **kw)
               for key, what in (("noc_output_bandwidth_words_per_cycle",
                                  "words per cycle of the bus carrying outputs out of the array"),
                                 ("noc_reduction_bandwidth_words_per_cycle",
                                  "words per cycle of each local link between neighbouring instances"))}
        if level.fanout == 1:
            given = [key for key in ("noc_bandwidth_words_per_cycle", *out) if key in raw]
            if given:
                self.fail(f"{prefix}.{given[0]}", raw[given[0]], "this level has no fan-out "
                          "(fanout_x * fanout_y = 1), so no bus leads into an array below it; put "
                          "NoC bandwidths on the level that carries the fan-out", **kw)
        return {"clock_mhz": clock, "shared_read_write_port": shared,
                "double_buffered": tuple(d for d in DATA_TYPES if d in double),
                "noc_bandwidth_words_per_cycle": buses, **out}


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def load_hardware(path: str | Path):
    """Any hardware config: a ``kind = "systolic"`` file gives a ``sim.systolic_config.
    SystolicArray``, every other file an :class:`Architecture` (as :func:`load_architecture`)."""
    data, resolved = _read_config_file(path)
    if isinstance(data, Mapping) and "kind" in data:
        from sim.systolic_config import KIND, parse_systolic

        if data["kind"] != KIND:
            raise ConfigError(f"{resolved}: kind = {_show(data['kind'])}: the only kind is "
                              f"\"{KIND}\"; leave kind out for a storage-level architecture",
                              file=str(resolved), field="kind", value=data["kind"])
        return parse_systolic(data, source_file=str(resolved))
    return parse_architecture(data, source_file=str(resolved))
