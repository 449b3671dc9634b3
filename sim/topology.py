"""SCALE-Sim topology files: one convolution layer per row of a CSV file.

The format (SCALE-Sim v2/v3, ``topologies/conv_nets/*.csv``) has a header row, then per layer::

    Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
    Conv1     ,224         ,224        ,11           ,11          ,3       ,96        ,4      ,

The trailing comma SCALE-Sim writes is accepted and so is its absence (SCALE-Sim itself silently
drops the last field of a row without one; here it is read). A ninth field, SCALE-Sim v3's N:M
sparsity ratio, is accepted when it is dense (N = M, e.g. ``1:1``). Blank rows are skipped. Every
other deviation is a :class:`TopologyError` naming the file, the row number (1-based, the header is
row 1), the column and the value. The input size is taken as given (SCALE-Sim has no padding
field: a padded layer is written with its padded size) and the output size is SCALE-Sim's
``ceil((H - R + stride) / stride)``.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from networks.errors import NetworkError

COLUMNS = ("layer name", "IFMAP height", "IFMAP width", "filter height", "filter width", "channels",
           "num filter", "stride")
_INTEGER_COLUMNS = COLUMNS[1:]


class TopologyError(NetworkError):
    """A topology file is missing, unreadable or has a malformed row."""


@dataclass(frozen=True, kw_only=True)
class TopologyLayer:
    """One convolution layer as a SCALE-Sim topology row describes it (sizes in elements)."""

    name: str
    ifmap_height: int
    ifmap_width: int
    filter_height: int
    filter_width: int
    channels: int
    filters: int
    stride: int

    @property
    def ofmap_height(self) -> int:
        return math.ceil((self.ifmap_height - self.filter_height + self.stride) / self.stride)

    @property
    def ofmap_width(self) -> int:
        return math.ceil((self.ifmap_width - self.filter_width + self.stride) / self.stride)

    @property
    def macs(self) -> int:
        return (self.ofmap_height * self.ofmap_width * self.filters * self.filter_height
                * self.filter_width * self.channels)


def is_topology_file(name: str | Path) -> bool:
    return str(name).lower().endswith(".csv")


def read_topology(path: str | Path) -> tuple[TopologyLayer, ...]:
    """All layers of a SCALE-Sim topology CSV, in file order; ``TopologyError`` on any bad row."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a topology file" if path.is_dir() else "no such topology file"
        raise TopologyError(f"{path}: {what}; give a SCALE-Sim topology CSV (header row, then one "
                            f"conv layer per row: {', '.join(COLUMNS)})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError(f"{path}: cannot read the topology file: {exc}") from exc
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise TopologyError(f"{path}: the topology file is empty; it needs a header row and one row "
                            "per conv layer")
    layers = []
    names: dict[str, int] = {}
    for row_number, row in enumerate(rows[1:], start=2):
        cells = [cell.strip() for cell in row]
        if cells and cells[-1] == "":
            cells = cells[:-1]  # SCALE-Sim's trailing comma
        if not any(cells):
            continue
        layer = _parse_row(path, row_number, cells)
        if layer.name in names:
            raise TopologyError(f"{path}: row {row_number}: layer name {layer.name!r} repeats row "
                                f"{names[layer.name]}; give every layer its own name")
        names[layer.name] = row_number
        layers.append(layer)
    if not layers:
        raise TopologyError(f"{path}: no layer rows after the header; add one row per conv layer: "
                            f"{', '.join(COLUMNS)}")
    return tuple(layers)


def _parse_row(path: Path, row_number: int, cells: list[str]) -> TopologyLayer:
    where = f"{path}: row {row_number}"
    if len(cells) not in (8, 9):
        raise TopologyError(f"{where}: has {len(cells)} fields, needs 8 ({', '.join(COLUMNS)}), "
                            "optionally a dense N:M sparsity ratio as a ninth")
    if not cells[0]:
        raise TopologyError(f"{where}: the layer name (column 1) is empty")
    values = {}
    for column, (label, cell) in enumerate(zip(_INTEGER_COLUMNS, cells[1:8]), start=2):
        try:
            value = int(cell)
        except ValueError:
            raise TopologyError(f"{where}, column {column} ({label}) = {cell!r}: needs a whole "
                                "number >= 1") from None
        if value < 1:
            raise TopologyError(f"{where}, column {column} ({label}) = {value}: needs a whole "
                                "number >= 1")
        values[label] = value
    if len(cells) == 9:
        _check_dense(where, cells[8])
    for size, filter_size in (("IFMAP height", "filter height"), ("IFMAP width", "filter width")):
        if values[filter_size] > values[size]:
            raise TopologyError(f"{where}: {filter_size} {values[filter_size]} exceeds {size} "
                                f"{values[size]}; give the padded input size")
    return TopologyLayer(
        name=cells[0], ifmap_height=values["IFMAP height"], ifmap_width=values["IFMAP width"],
        filter_height=values["filter height"], filter_width=values["filter width"],
        channels=values["channels"], filters=values["num filter"], stride=values["stride"],
    )


def _check_dense(where: str, cell: str) -> None:
    parts = cell.split(":")
    try:
        kept, block = (int(part) for part in parts)
    except ValueError:
        raise TopologyError(f"{where}, column 9 (sparsity ratio) = {cell!r}: needs N:M such as "
                            "1:1") from None
    if kept != block or kept < 1:
        raise TopologyError(f"{where}, column 9 (sparsity ratio) = {cell!r}: only dense layers "
                            "(N = M, e.g. 1:1) are simulated; drop the column or write 1:1")
