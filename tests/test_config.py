"""The hardware-config loader: the shipped presets carry the published facts, and every kind of
malformed file raises one ConfigError naming the file, the field and the value."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sim.arch import COUNTING_MODES, DATA_TYPES, Architecture
from sim.config import ConfigError, list_presets, load_architecture, parse_architecture, preset_path
from sim.errors import ConfigError as ConfigErrorFromErrors
from sim.timing import words_per_core_cycle

PRESETS = ("eyeriss_like_timeloop", "eyeriss_v1", "eyeriss_isca16", "eyeriss_energy_tool")


def _isca16_costs(data_dir: Path) -> dict[str, float]:
    """Normalised energy per 16-bit access (ISCA 2016 Table IV), from tests/data."""
    with open(data_dir / "energy_costs_isca2016.csv", newline="") as handle:
        return {row["level"]: float(row["normalized_energy_per_16bit_access"])
                for row in csv.DictReader(handle)}


def _per_word(entry_energy: float, block_words: int) -> float:
    return entry_energy / block_words


# --------------------------------------------------------------------------------------- presets


def test_list_presets_and_paths():
    assert set(PRESETS) <= set(list_presets())
    for name in PRESETS:
        path = preset_path(name)
        assert path.name == f"{name}.toml" and path.parent.name == "hwconfigs"


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_by_name_and_by_path(name):
    by_name = load_architecture(name)
    by_path = load_architecture(preset_path(name))
    assert isinstance(by_name, Architecture)
    assert by_name == by_path
    assert by_name.name == name
    assert by_name.source_file == str(preset_path(name).resolve())
    assert by_name.counting in COUNTING_MODES
    # every energy entry says where its number comes from
    entries = [by_name.mac_energy]
    for level in by_name.levels:
        entries += [level.energy_read, level.energy_fill, level.energy_update]
        if level.noc_energy_per_word is not None:
            entries.append(level.noc_energy_per_word)
    assert all(entry.source.strip() for entry in entries)
    assert set(by_name.levels[0].keeps) == set(DATA_TYPES)


def test_eyeriss_like_timeloop_matches_timeloop_reference(data_dir):
    # Timeloop v3.0.3 "eyeriss_like": timeloop_counting.md, tests/data/timeloop_vgg_conv_eyeriss.csv
    arch = load_architecture("eyeriss_like_timeloop")
    assert [level.name for level in arch.levels] == [
        "DRAM", "shared_glb", "ifmap_spad", "weights_spad", "psum_spad"]
    assert arch.word_bits == {"weights": 8, "inputs": 8, "outputs": 16}
    assert arch.energy_unit == "pJ" and arch.counting == "timeloop"
    assert arch.mac_units == 168
    ifmap = arch.levels[arch.level_index("ifmap_spad")]
    assert (ifmap.fanout_x, ifmap.fanout_y, ifmap.multicast) == (14, 12, "identical")
    # the reference reports no network energy: the array's NoC costs nothing in this preset
    assert ifmap.noc_energy_per_word.energy_per_access == 0.0
    assert all(level.noc_energy_per_word is None for level in arch.levels if level is not ifmap)
    expected = {  # name: (keeps, capacity_words, block_words)
        "DRAM": ({"weights", "inputs", "outputs"}, None, 8),
        "shared_glb": ({"inputs", "outputs"}, 131072, 8),
        "ifmap_spad": ({"inputs"}, 24, 2),
        "weights_spad": ({"weights"}, 384, 2),
        "psum_spad": ({"outputs"}, 16, 1),
    }
    for level in arch.levels:
        assert (set(level.keeps), level.capacity_words, level.block_words) == expected[level.name]
    with open(data_dir / "timeloop_vgg_conv_eyeriss.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["level"] == "mac":
            assert arch.mac_energy.energy_per_access == float(row["energy_read_pJ_per_vector"])
            continue
        level = arch.levels[arch.level_index(row["level"])]
        assert level.block_words == int(row["block_words"])
        assert level.energy_read.energy_per_access == float(row["energy_read_pJ_per_vector"])
        write = float(row["energy_write_pJ_per_vector"])
        assert level.energy_fill.energy_per_access == write
        assert level.energy_update.energy_per_access == write
        assert row["dataspace"].lower() in level.keeps
        assert int(row["utilized_instances"]) == arch.instances(arch.level_index(row["level"]))


def test_eyeriss_v1_matches_the_chip(data_dir):
    # Chen, Krishna, Emer, Sze, JSSC 2017 / ISSCC 2016; costs: ISCA 2016 Table IV
    arch = load_architecture("eyeriss_v1")
    assert [level.name for level in arch.levels] == [
        "DRAM", "global_buffer", "ifmap_spad", "filter_spad", "psum_spad"]
    assert arch.mac_units == 168
    pe = arch.levels[arch.level_index("ifmap_spad")]
    assert (pe.fanout_y, pe.fanout_x) == (12, 14)  # 12 rows x 14 columns
    assert pe.multicast == "overlap"
    assert arch.clock_mhz == 200.0 and arch.counting == "exact" and arch.energy_unit == "MAC"
    assert arch.word_bits == {data_type: 16 for data_type in DATA_TYPES}
    spads = {name: arch.levels[arch.level_index(name)] for name in
             ("filter_spad", "ifmap_spad", "psum_spad")}
    assert {name: level.capacity_words for name, level in spads.items()} == {
        "filter_spad": 224, "ifmap_spad": 12, "psum_spad": 24}
    assert spads["filter_spad"].keeps == ("weights",)
    assert spads["ifmap_spad"].keeps == ("inputs",)
    assert spads["psum_spad"].keeps == ("outputs",)
    glb = arch.levels[arch.level_index("global_buffer")]
    assert glb.capacity_words * 16 // 8 == 108 * 1024  # 108 kB of 16-bit words
    assert glb.partition_words == {"weights": 4096}  # 8 kB for filters
    assert (glb.capacity_words - glb.partition_words["weights"]) * 2 == 100 * 1024  # ifmaps/psums
    assert set(glb.keeps) == set(DATA_TYPES)
    dram = arch.levels[0]
    assert dram.block_words * 16 == 64  # 64-bit DRAM bus
    assert dram.clock_mhz == 60.0 and dram.shared_read_write_port  # one 64-bit bus at 60 MHz
    assert words_per_core_cycle(arch, 0, dram.read_bandwidth_words_per_cycle) == pytest.approx(4 * 60 / 200)
    assert spads["ifmap_spad"].noc_bandwidth_words_per_cycle == {  # filter/psum 64 b, ifmap 16 b
        "weights": 4.0, "inputs": 1.0, "outputs": 4.0}
    assert spads["ifmap_spad"].noc_output_bandwidth_words_per_cycle == 4.0  # 64-b output bus
    assert spads["ifmap_spad"].noc_reduction_bandwidth_words_per_cycle == 4.0  # 64-b psum link
    assert arch.timing.compute_waits_for_dram and arch.timing.pass_ramp_up
    costs = _isca16_costs(data_dir)
    assert _per_word(dram.energy_read.energy_per_access, dram.block_words) == costs["DRAM"]
    assert glb.energy_read.energy_per_access == costs["global_buffer"]
    for level in spads.values():
        for entry in (level.energy_read, level.energy_fill, level.energy_update):
            assert entry.energy_per_access == costs["register_file"]
    assert pe.noc_energy_per_word.energy_per_access == costs["array_noc"]
    assert arch.mac_energy.energy_per_access == costs["mac"]


def test_eyeriss_isca16_matches_the_analysis_setup(data_dir):
    # Chen, Emer, Sze, ISCA 2016: 256 PEs, 512 B RF per PE, 128 kB buffer, Table IV costs
    arch = load_architecture("eyeriss_isca16")
    assert [level.name for level in arch.levels] == ["DRAM", "global_buffer", "rf"]
    assert arch.mac_units == 256
    rf = arch.levels[2]
    assert (rf.fanout_x, rf.fanout_y) == (16, 16)
    assert rf.capacity_words * arch.word_bits["inputs"] // 8 == 512
    assert set(rf.keeps) == set(DATA_TYPES)
    glb = arch.levels[1]
    assert glb.capacity_words * 2 == 128 * 1024 and set(glb.keeps) == set(DATA_TYPES)
    assert arch.counting == "exact" and rf.multicast == "overlap"
    costs = _isca16_costs(data_dir)
    expected = {"DRAM": costs["DRAM"], "global_buffer": costs["global_buffer"],
                "rf": costs["register_file"]}
    for level in arch.levels:
        for entry in (level.energy_read, level.energy_fill, level.energy_update):
            assert _per_word(entry.energy_per_access, level.block_words) == expected[level.name]
    assert rf.noc_energy_per_word.energy_per_access == costs["array_noc"]
    assert arch.mac_energy.energy_per_access == costs["mac"]


# ------------------------------------------------------------------------------ malformed files

BASE = '''\
format_version = 1
name = "tiny"
description = "a small architecture for loader tests"
clock_mhz = 100.0
energy_unit = "pJ"
counting = "exact"

[word_bits]
weights = 8
inputs = 8
outputs = 16

[mac]
energy_per_mac = 1.0
energy_source = "test mac"

[[level]]
name = "DRAM"
keeps = ["weights", "inputs", "outputs"]
block_words = 4
read_bandwidth_words_per_cycle = 2.0
energy_read_per_access = 100.0
energy_fill_per_access = 100.0
energy_update_per_access = 100.0
energy_source = "test dram"

[[level]]
name = "buffer"
keeps = ["weights", "inputs", "outputs"]
capacity_words = 1024
partition_words = { weights = 256 }
energy_read_per_access = 5.5
energy_fill_per_access = 5.0
energy_update_per_access = 5.0
energy_source = "test buffer"

[[level]]
name = "rf"
keeps = ["inputs", "weights", "outputs"]
capacity_words = 64
fanout_x = 4
fanout_y = 2
multicast = "overlap"
noc_energy_per_word = 2.0
noc_energy_source = "test noc"
energy_read_per_access = 1.0
energy_fill_per_access = 1.0
energy_update_per_access = 1.0
energy_source = "test rf"
'''


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hw.toml"
    path.write_text(text)
    return path


def _edit(*replacements: tuple[str, str]) -> str:
    text = BASE
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_base_config_is_valid(tmp_path):
    arch = load_architecture(_write(tmp_path, BASE))
    assert arch.mac_units == 8
    assert arch.levels[2].keeps == ("weights", "inputs", "outputs")  # canonical order
    assert arch.levels[1].capacity_for("weights") == 256
    assert arch.levels[0].capacity_words is None
    assert arch.levels[1].energy_read.source == "test buffer"


def test_per_entry_source_overrides_level_source(tmp_path):
    text = _edit(('energy_source = "test rf"',
                  'energy_source = "test rf"\nenergy_update_source = "rf update paper"'))
    rf = load_architecture(_write(tmp_path, text)).levels[2]
    assert rf.energy_update.source == "rf update paper" and rf.energy_read.source == "test rf"


MALFORMED = [
    # id, replacements, fragments the message must contain (besides the file)
    ("misspelled_key", [("capacity_words = 64", "capacity_word = 64")],
     ["level[2].capacity_word", "64", "did you mean 'capacity_words'"]),
    ("misspelled_top_key", [("clock_mhz = 100.0", "clock_mhs = 100.0")],
     ["clock_mhs", "100.0", "did you mean 'clock_mhz'"]),
    ("misspelled_word_bits", [("weights = 8", "weight = 8")],
     ["word_bits.weight", "8", "did you mean 'weights'"]),
    ("negative_capacity", [("capacity_words = 1024", "capacity_words = -4")],
     ["level[1].capacity_words", "-4", ">= 1", 'level "buffer"']),
    ("zero_capacity", [("capacity_words = 64", "capacity_words = 0")],
     ["level[2].capacity_words", "= 0", ">= 1"]),
    ("string_for_int", [("capacity_words = 64", 'capacity_words = "64"')],
     ["level[2].capacity_words", '"64"', "string", "integer"]),
    ("float_for_int", [("capacity_words = 64", "capacity_words = 64.5")],
     ["level[2].capacity_words", "64.5", "float", "integer"]),
    ("bool_is_not_int", [("fanout_x = 4", "fanout_x = true")],
     ["level[2].fanout_x", "true", "boolean", "integer"]),
    ("fanout_zero", [("fanout_y = 2", "fanout_y = 0")],
     ["level[2].fanout_y", "0", ">= 1"]),
    ("block_zero", [("block_words = 4", "block_words = 0")],
     ["level[0].block_words", "0", ">= 1"]),
    ("clock_not_positive", [("clock_mhz = 100.0", "clock_mhz = -200.0")],
     ["clock_mhz", "-200.0", "> 0"]),
    ("clock_string", [("clock_mhz = 100.0", 'clock_mhz = "200"')],
     ["clock_mhz", '"200"', "string"]),
    ("bandwidth_zero", [("read_bandwidth_words_per_cycle = 2.0",
                         "read_bandwidth_words_per_cycle = 0")],
     ["level[0].read_bandwidth_words_per_cycle", "0", "> 0"]),
    ("unknown_data_type", [('["inputs", "weights", "outputs"]', '["input", "weights", "outputs"]')],
     ["level[2].keeps", '"input"', 'did you mean "inputs"']),
    ("partition_too_large", [("weights = 256 }", "weights = 2048 }")],
     ["level[1].partition_words.weights", "2048", "capacity_words = 1024"]),
    ("partition_not_kept", [('keeps = ["weights", "inputs", "outputs"]\ncapacity_words = 1024',
                             'keeps = ["inputs", "outputs"]\ncapacity_words = 1024')],
     ["level[1].partition_words.weights", "256", "does not keep weights"]),
    ("duplicate_level_name", [('name = "rf"', 'name = "buffer"')],
     ["level[2].name", '"buffer"', "duplicate", "level[1]"]),
    ("outermost_missing_type",
     [('keeps = ["weights", "inputs", "outputs"]\nblock_words = 4',
       'keeps = ["weights", "inputs"]\nblock_words = 4')],
     ["level[0].keeps", '["weights", "inputs"]', "outermost", "outputs"]),
    ("missing_energy", [("energy_update_per_access = 5.0\n", "")],
     ["level[1].energy_update_per_access", "missing", 'level "buffer"']),
    ("energy_without_source", [('energy_source = "test buffer"\n', "")],
     ["level[1].energy_read_source", "5.5", "energy_source"]),
    ("noc_without_source", [('noc_energy_source = "test noc"\n', "")],
     ["level[2].noc_energy_source", "missing", "2.0"]),
    ("mac_without_source", [('energy_source = "test mac"\n', "")],
     ["mac.energy_source", "missing"]),
    ("negative_energy", [("energy_fill_per_access = 1.0", "energy_fill_per_access = -1.0")],
     ["level[2].energy_fill_per_access", "-1.0", ">= 0"]),
    ("missing_format_version", [("format_version = 1\n", "")],
     ["format_version", "missing", "format_version = 1"]),
    ("wrong_format_version", [("format_version = 1", "format_version = 2")],
     ["format_version", "= 2", "format_version = 1 only"]),
    ("bad_counting", [('counting = "exact"', 'counting = "Timeloop"')],
     ["counting", '"Timeloop"', '"timeloop", "exact"', 'did you mean "timeloop"']),
    ("bad_multicast", [('multicast = "overlap"', 'multicast = "diagonal"')],
     ["level[2].multicast", '"diagonal"', '"identical", "overlap"']),
    ("bad_energy_unit", [('energy_unit = "pJ"', 'energy_unit = "nJ"')],
     ["energy_unit", '"nJ"', '"pJ", "MAC"']),
    ("word_bits_zero", [("outputs = 16", "outputs = 0")],
     ["word_bits.outputs", "0", ">= 1"]),
    ("fanout_on_outermost", [("block_words = 4", "block_words = 4\nfanout_x = 2")],
     ["level[0].fanout_x", "2", "outermost"]),
]


@pytest.mark.parametrize("replacements, fragments",
                         [pytest.param(r, f, id=i) for i, r, f in MALFORMED])
def test_malformed_config_names_file_field_and_value(tmp_path, replacements, fragments):
    path = _write(tmp_path, _edit(*replacements))
    with pytest.raises(ConfigError) as caught:
        load_architecture(path)
    message = str(caught.value)
    assert str(path.resolve()) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert caught.value.file == str(path.resolve())


def test_data_type_kept_by_no_level(tmp_path):
    text = BASE.replace('"outputs"]', "]")  # no level keeps outputs
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="kept by no level") as caught:
        load_architecture(path)
    assert str(path.resolve()) in str(caught.value) and '"outputs"' in str(caught.value)
    assert caught.value.field == "level[*].keeps" and caught.value.value == "outputs"


def test_error_attributes_and_type(tmp_path):
    path = _write(tmp_path, _edit(("capacity_words = 64", "capacity_words = -3")))
    with pytest.raises(ValueError) as caught:  # ConfigError is a ValueError
        load_architecture(path)
    error = caught.value
    assert isinstance(error, ConfigErrorFromErrors)
    assert (error.field, error.value) == ("level[2].capacity_words", -3)


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = _write(tmp_path, BASE.replace('name = "tiny"', 'name = "tiny'))
    with pytest.raises(ConfigError) as caught:
        load_architecture(path)
    message = str(caught.value)
    assert str(path.resolve()) in message and "line 2" in message and "TOML" in message


def test_missing_file_and_unknown_preset(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="no such config file") as caught:
        load_architecture(missing)
    assert str(missing) in str(caught.value)
    with pytest.raises(ConfigError, match="did you mean 'eyeriss_v1'") as caught:
        load_architecture("eyeriss_v2")
    assert "eyeriss_v2" in str(caught.value) and "eyeriss_isca16" in str(caught.value)


def test_parse_architecture_from_mapping():
    with pytest.raises(ConfigError, match=r"<sweep>: level is missing"):
        parse_architecture({"format_version": 1, "name": "x", "clock_mhz": 1.0,
                            "energy_unit": "pJ", "counting": "exact",
                            "word_bits": {"weights": 8, "inputs": 8, "outputs": 8},
                            "mac": {"energy_per_mac": 1.0, "energy_source": "s"}},
                           source_file="<sweep>")


# ------------------------------------------------------------------------------- sparsity options

SPARSITY_MALFORMED = [
    ("bad_zero_handling", '[zero_handling]\ninputs = "gated"\n',
     ["zero_handling.inputs", '"gated"', '"none", "gate", "skip"', 'did you mean "gate"']),
    ("zero_handling_of_outputs", '[zero_handling]\noutputs = "gate"\n',
     ["zero_handling.outputs", '"gate"', "unknown key", "weights, inputs"]),
    ("bad_compression", '[dram_compression]\noutputs = "RLE"\n',
     ["dram_compression.outputs", '"RLE"', '"none", "rle", "significance_map"']),
    ("compression_not_a_table", None,
     ["dram_compression", '"rle"', "must be a table"]),
    ("compression_number", '[dram_compression]\nweights = 1\n',
     ["dram_compression.weights", "= 1", '"none", "rle", "significance_map"']),
]


@pytest.mark.parametrize("table, fragments", [pytest.param(t, f, id=i) for i, t, f in SPARSITY_MALFORMED])
def test_bad_sparsity_option_names_file_field_and_value(tmp_path, table, fragments):
    if table is None:  # a top-level key, not a table
        text = _edit(('counting = "exact"', 'counting = "exact"\ndram_compression = "rle"'))
    else:
        text = _edit(("[mac]", table + "\n[mac]"))
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_architecture(path)
    message = str(caught.value)
    assert str(path.resolve()) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert caught.value.file == str(path.resolve()) and caught.value.field == fragments[0]


def test_sparsity_options_default_to_dense_and_are_stored(tmp_path):
    dense = load_architecture(_write(tmp_path, BASE))
    assert dense.zero_handling == {"weights": "none", "inputs": "none"}
    assert dense.dram_compression == {"weights": "none", "inputs": "none", "outputs": "none"}
    assert not dense.exploits_zeros
    text = _edit(("[mac]", '[zero_handling]\ninputs = "gate"\n[dram_compression]\n'
                           'outputs = "rle"\nweights = "significance_map"\n\n[mac]'))
    sparse = load_architecture(_write(tmp_path, text))
    assert sparse.zero_handling == {"weights": "none", "inputs": "gate"}
    assert sparse.dram_compression == {"weights": "significance_map", "inputs": "none", "outputs": "rle"}
    assert sparse.exploits_zeros


def test_compression_needs_an_inner_level_keeping_the_data_type(tmp_path):
    text = _edit(("[mac]", '[dram_compression]\noutputs = "rle"\n\n[mac]'),
                 ('keeps = ["weights", "inputs", "outputs"]\ncapacity_words = 1024',
                  'keeps = ["weights", "inputs"]\ncapacity_words = 1024'),
                 ('keeps = ["inputs", "weights", "outputs"]', 'keeps = ["inputs", "weights"]'))
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="no level inside 'DRAM' keeps outputs") as caught:
        load_architecture(path)
    assert caught.value.field == "dram_compression.outputs" and caught.value.value == "rle"


def test_rle_needs_values_that_fit_its_word(tmp_path):
    text = _edit(("[mac]", '[dram_compression]\noutputs = "rle"\n\n[mac]'), ("outputs = 16", "outputs = 59"))
    with pytest.raises(ConfigError, match="word_bits.outputs = 59") as caught:
        load_architecture(_write(tmp_path, text))
    assert caught.value.field == "dram_compression.outputs"


def test_eyeriss_presets_carry_their_zero_handling():
    v1 = load_architecture("eyeriss_v1")  # JSSC17: gate on zero ifmaps, RLE of feature maps
    assert v1.zero_handling == {"weights": "none", "inputs": "gate"}
    assert v1.dram_compression == {"weights": "none", "inputs": "rle", "outputs": "rle"}
    tool = load_architecture("eyeriss_energy_tool")  # ASIL17: skip either zero, compress DRAM
    assert tool.zero_handling == {"weights": "skip", "inputs": "skip"}
    assert set(tool.dram_compression.values()) == {"significance_map"}
    # otherwise the same chip
    assert tool.levels == v1.levels and tool.word_bits == v1.word_bits and tool.mac_energy == v1.mac_energy
