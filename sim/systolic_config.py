"""Systolic-array hardware configs (``kind = "systolic"``), validated into a frozen object.

Read through ``sim.config.load_hardware`` (the only reader of hwconfig files), which hands a file
whose top-level ``kind`` is ``"systolic"`` to :func:`parse_systolic`. Format::

    format_version = 1
    kind = "systolic"
    name = "systolic_32x32_os"
    description = "..."                 # optional
    clock_mhz = 1000.0                  # optional, > 0; only turns cycles into latency_s

    [array]
    rows = 32                           # PE rows, integer >= 1
    cols = 32                           # PE columns, integer >= 1
    dataflow = "os"                     # "os", "ws" or "is" (see sim.systolic)

    [sram]                              # per-operand SRAM sizes, as SCALE-Sim's config gives them
    ifmap_bytes = 65536                 # integer >= 1
    filter_bytes = 65536
    ofmap_bytes = 65536
    word_bytes = 1                      # integer >= 1 (SCALE-Sim: 1)

The SRAM sizes are recorded and checked but do not change cycles: like SCALE-Sim's default
bandwidth mode, the model has no DRAM stalls. Errors are ``sim.errors.ConfigError`` naming the file,
the field, the value and what is allowed; unknown keys suggest the closest valid key.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.config import FORMAT_VERSION, _Parser
from sim.errors import ConfigError
from sim.systolic import DATAFLOWS

KIND = "systolic"
_TOP_KEYS = ("format_version", "kind", "name", "description", "clock_mhz", "array", "sram")
_ARRAY_KEYS = ("rows", "cols", "dataflow")
_SRAM_KEYS = ("ifmap_bytes", "filter_bytes", "ofmap_bytes", "word_bytes")


@dataclass(frozen=True, kw_only=True)
class SystolicArray:
    name: str
    description: str
    source_file: str
    rows: int
    cols: int
    dataflow: str
    ifmap_sram_bytes: int
    filter_sram_bytes: int
    ofmap_sram_bytes: int
    word_bytes: int
    clock_mhz: float | None

    @property
    def pes(self) -> int:
        return self.rows * self.cols


def parse_systolic(data: Mapping[str, Any], *, source_file: str) -> SystolicArray:
    """Validate a parsed ``kind = "systolic"`` config and build it."""
    p = _Parser(source_file)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source_file}: the config must be a table of keys", file=source_file)
    p.check_keys(data, _TOP_KEYS, "")
    version = p.get(data, "format_version", "", "write format_version = 1 at the top of the file",
                    required=True)
    if type(version) is not int or version != FORMAT_VERSION:
        p.fail("format_version", version, f"this loader reads format_version = {FORMAT_VERSION} only")
    p.choice(data, "kind", "", (KIND,), what="the kind of hardware")
    name = p.text(data, "name", "", what="the architecture's name")
    description = p.text(data, "description", "", what="a description", required=False) or ""
    clock_mhz = p.number(data, "clock_mhz", "", positive=True, what="the clock in MHz",
                         required=False)
    array = p.table(data, "array", "", what="the PE array: rows, cols, dataflow")
    p.check_keys(array, _ARRAY_KEYS, "array")
    rows = p.integer(array, "rows", "array", minimum=1, what="PE rows")
    cols = p.integer(array, "cols", "array", minimum=1, what="PE columns")
    dataflow = p.choice(array, "dataflow", "array", DATAFLOWS,
                        what="the dataflow (output, weight or input stationary)")
    sram = p.table(data, "sram", "", what="SRAM sizes per operand")
    p.check_keys(sram, _SRAM_KEYS, "sram")
    sizes = {key: p.integer(sram, key, "sram", minimum=1, what="bytes")
             for key in ("ifmap_bytes", "filter_bytes", "ofmap_bytes")}
    word_bytes = p.integer(sram, "word_bytes", "sram", minimum=1, what="bytes per word",
                           required=False, default=1)
    for key, size in sizes.items():
        if size < word_bytes:
            p.fail(f"sram.{key}", size, f"is smaller than one word ({word_bytes} bytes)")
    return SystolicArray(
        name=name, description=description, source_file=source_file, rows=rows, cols=cols,
        dataflow=dataflow, ifmap_sram_bytes=sizes["ifmap_bytes"],
        filter_sram_bytes=sizes["filter_bytes"], ofmap_sram_bytes=sizes["ofmap_bytes"],
        word_bytes=word_bytes, clock_mhz=clock_mhz,
    )
