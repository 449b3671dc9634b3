"""SCALE-Sim topology CSV reader: its format as SCALE-Sim writes it, and one clear error per bad row."""
from __future__ import annotations

from pathlib import Path

import pytest

from networks.errors import NetworkError
from sim.topology import TopologyError, TopologyLayer, read_topology

HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
ALEXNET = Path(__file__).resolve().parents[1] / "experiments" / "topologies" / "alexnet.csv"


def _write(tmp_path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "topology.csv"
    path.write_text(header + body)
    return path


def test_scalesim_alexnet_file_reads_with_ceiling_output_sizes():
    layers = read_topology(ALEXNET)
    assert [layer.name for layer in layers] == ["Conv1", "Conv2", "Conv3", "Conv4", "Conv5"]
    conv1 = layers[0]
    assert (conv1.ifmap_height, conv1.filter_height, conv1.channels, conv1.filters, conv1.stride) == (224, 11, 3, 96, 4)
    # SCALE-Sim: E = ceil((224 - 11 + 4) / 4) = ceil(54.25) = 55 (floor would give 54)
    assert (conv1.ofmap_height, conv1.ofmap_width) == (55, 55)
    assert (layers[1].ofmap_height, layers[2].ofmap_height) == (23, 11)


def test_trailing_comma_is_optional_and_blank_rows_and_spaces_are_ignored(tmp_path):
    path = _write(tmp_path, " c1 , 9 , 8 , 3 , 2 , 4 , 5 , 2 ,\n\nc2,6,6,1,1,3,7,1\n   \n")
    c1, c2 = read_topology(path)
    assert c1 == TopologyLayer(name="c1", ifmap_height=9, ifmap_width=8, filter_height=3, filter_width=2,
                               channels=4, filters=5, stride=2)
    assert (c1.ofmap_height, c1.ofmap_width) == (4, 4)  # ceil(8/2), ceil(8/2)
    assert c2.stride == 1 and c2.macs == 6 * 6 * 3 * 7


def test_dense_sparsity_column_is_accepted(tmp_path):
    (layer,) = read_topology(_write(tmp_path, "c1,6,6,3,3,2,2,1,4:4,\n"))
    assert layer.filters == 2


@pytest.mark.parametrize("body, words", [
    ("c1,6,6,3,3,2,2,\n", ["row 2", "7 fields", "needs 8"]),
    ("c1,6,6,3,3,2,2,1,1:1,9,\n", ["row 2", "10 fields"]),
    ("c1,6,6,3,3,2,2,1,\nc2,6,6,3,x,2,2,1,\n", ["row 3", "column 5 (filter width)", "'x'"]),
    ("c1,6,6,3,3,0,2,1,\n", ["row 2", "column 6 (channels) = 0", ">= 1"]),
    ("c1,6,6,3,3,2,2,1.5,\n", ["row 2", "column 8 (stride)", "'1.5'"]),
    ("c1,4,6,5,3,2,2,1,\n", ["row 2", "filter height 5 exceeds IFMAP height 4"]),
    (",6,6,3,3,2,2,1,\n", ["row 2", "layer name"]),
    ("c1,6,6,3,3,2,2,1,\nc1,6,6,3,3,2,2,1,\n", ["row 3", "'c1' repeats row 2"]),
    ("c1,6,6,3,3,2,2,1,2:4,\n", ["row 2", "column 9", "'2:4'", "dense"]),
    ("c1,6,6,3,3,2,2,1,half,\n", ["row 2", "column 9", "N:M"]),
    ("", ["no layer rows"]),
])
def test_malformed_rows_raise_one_error_with_file_and_row(tmp_path, body, words):
    path = _write(tmp_path, body)
    with pytest.raises(TopologyError) as info:
        read_topology(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for word in words:
        assert word in message
    assert isinstance(info.value, NetworkError)  # the CLI reports it as one line, exit code 2


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(TopologyError, match="no such topology file"):
        read_topology(tmp_path / "absent.csv")
    with pytest.raises(TopologyError, match="is a directory"):
        read_topology(tmp_path)
    with pytest.raises(TopologyError, match="empty"):
        read_topology(_write(tmp_path, "", header=""))
