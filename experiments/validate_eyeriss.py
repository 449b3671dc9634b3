"""Validate the row-stationary mappings of ``eyeriss_v1`` against the Eyeriss chip on AlexNet.

For AlexNet CONV1-5 at batch 4 with the chip's published RS parameters, compare the closed-form
model with the published measurements: active PEs, MACs, global-buffer traffic (reads + fills +
updates of all data types, in MB = 1e6 bytes) and DRAM traffic, uncompressed (the published
figure is approximate) and run-length compressed as the chip moves it (measured). Every published
mapping is expressible: CONV1's 55 ofmap rows in passes of e = 7 are a temporal remainder (seven
full passes, then one of 6 rows on 132 PEs), CONV2's 27-column PE set folded as 14 + 13 columns a
spatial remainder (5 of 140 PEs idle), and the global buffer streams filters through its 8 kB
partition one processing pass at a time (``row_stationary_mapping(..., stream_filters=True)``:
CONV1's m = 96 filters exceed the partition; the counts are those of the whole tile). The ``note``
column says which of these a layer uses. A published mapping that could not be expressed would be
reported with the reason, together with the figures of the nearest expressible RS mapping and of
the default search (``sim.rowstationary``), labelled in the ``mapping`` column.

Compressed DRAM traffic: every expressible mapping also runs through the counting engine, which
RLE-codes each chunk of feature maps moved to or from DRAM (``eyeriss_v1``: ifmaps except the
image, and ofmaps after the on-chip ReLU; filters are not compressed). Its data: each layer's ifmaps
are synthetic with the chip's published zero fractions (``sim.synthetic``, zeros placed uniformly
at random), the filters are the zoo's He-random weights (dense), and the ofmaps are computed from
these (so about half of them are zero after the ReLU, whatever the chip's real ofmaps held).
``rle_reduction`` = uncompressed / compressed DRAM traffic (published: the approximate uncompressed
figure over the measured one). The engine's dense counters must agree with the closed form.

Latency (``sim.timing``, the engine's step-by-step schedule on the same data at 200 MHz, with the
chip's bus widths, its 64-bit 60 MHz DRAM link and the two behaviours the chip papers name: the
array stops while ifmaps load from and ofmaps drain to DRAM, and each processing pass ramps up):
``total_latency_ms`` is every cycle of the layer, ``processing_latency_ms`` the total without the
DRAM stalls, compared with the chip's measured total and processing latencies (target +-10%).

    python experiments/validate_eyeriss.py                 # all five layers, about 30 s
    python experiments/validate_eyeriss.py --quick         # CI smoke: CONV3 only, a few seconds

Writes ``validation.csv`` (one row per layer x mapping), ``validation.png`` (drawn from the CSV)
and ``manifest.json`` into ``--out``. Exit code 0 when the run completes (gaps to the published
figures are reported, not failures), 1 when the engine and the closed form disagree.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import networks
from sim.arch import Architecture
from sim.config import load_architecture
from sim.energy import access_energy
from sim.engine import run_engine
from sim.mapping import Mapping, build_nest
from sim.model import closed_form_counts
from sim.rowstationary import (
    RowStationaryError, RowStationaryParams, buffer_filter_words, default_row_stationary,
    nearest_row_stationary, row_stationary_mapping,
)
from sim.simulate import dram_bits, layer_data
from sim.synthetic import PUBLISHED_SOURCE as DENSITY_SOURCE
from sim.synthetic import published_profile

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "results" / "validate_eyeriss"
ARCHITECTURE = "eyeriss_v1"
NETWORK = "alexnet"
BATCH = 4  # the chip's published AlexNet run processes 4 images

# Published AlexNet CONV1-5 mapping and measurements at batch 4: Y.-H. Chen, T. Krishna, J. Emer,
# V. Sze, "Eyeriss: An Energy-Efficient Reconfigurable Accelerator for Deep Convolutional Neural
# Networks", IEEE JSSC 2017 (per-layer AlexNet mapping parameters and measured results), as
# transcribed in the project's reference table eyeriss_alexnet_jssc2017.csv. MB = 1e6 bytes;
# dram_MB is the measured (run-length compressed) traffic, dram_uncompressed_MB_approx the
# approximate traffic without compression.
PUBLISHED_SOURCE = "Chen, Krishna, Emer, Sze, IEEE JSSC 2017, AlexNet CONV1-5 at batch 4"
PUBLISHED = pd.DataFrame(
    [
        # layer,  m,  n,  e,  p, q, r, t, active_pes, macs_M, glb_MB, dram_MB, dram_uncompressed_MB_approx,
        #   total_latency_ms, processing_latency_ms (200 MHz)
        ("conv1", 96, 1, 7, 16, 1, 1, 2, 154, 421.6, 18.5, 5.0, 6.0, 20.9, 16.5),
        ("conv2", 64, 1, 27, 16, 2, 1, 1, 135, 895.7, 77.6, 4.0, 5.5, 41.9, 39.2),
        ("conv3", 64, 4, 13, 16, 4, 1, 4, 156, 598.1, 50.2, 3.0, 5.1, 23.6, 21.8),
        ("conv4", 64, 4, 13, 16, 3, 2, 2, 156, 448.6, 37.4, 2.1, 3.9, 18.4, 16.0),
        ("conv5", 64, 4, 13, 16, 3, 2, 2, 156, 299.0, 24.9, 1.3, 2.6, 10.5, 10.0),
    ],
    columns=["layer", "m", "n", "e", "p", "q", "r", "t", "active_pes", "macs_M", "glb_MB",
             "dram_MB", "dram_uncompressed_MB_approx", "total_latency_ms", "processing_latency_ms"],
)
QUICK_LAYERS = ("conv3",)

# Targets of the validation: within these relative gaps the model is taken to match the chip.
GLB_TOLERANCE = 0.10
DRAM_TOLERANCE = 0.15
LATENCY_TOLERANCE = 0.10

PARAMS = ("m", "n", "e", "p", "q", "r", "t")
COLUMNS = [
    "layer", "mapping", "expressible", "note", *PARAMS,
    "active_pes", "active_pes_published", "active_pes_ratio",
    "macs_M", "macs_M_published", "macs_ratio",
    "glb_MB", "glb_weights_MB", "glb_inputs_MB", "glb_outputs_MB", "glb_MB_published", "glb_ratio",
    "dram_MB", "dram_weights_MB", "dram_inputs_MB", "dram_outputs_MB",
    "dram_uncompressed_MB_published_approx", "dram_ratio",
    "dram_compressed_MB", "dram_compressed_weights_MB", "dram_compressed_inputs_MB",
    "dram_compressed_outputs_MB", "dram_compressed_MB_published", "dram_compressed_ratio",
    "rle_reduction", "rle_reduction_published",
    "input_density_requested", "input_density_achieved", "output_density_achieved",
    "channel_passes", "engine_agrees",
    "cycles_total", "cycles_compute", "cycles_stall_dram", "cycles_stall_buffer", "cycles_stall_noc",
    "processing_latency_ms", "processing_latency_ms_published", "processing_latency_ratio",
    "total_latency_ms", "total_latency_ms_published", "total_latency_ratio",
]
INTEGER_COLUMNS = [*PARAMS, "active_pes", "active_pes_published", "channel_passes"]


def traffic_MB(counts, arch: Architecture) -> dict[str, float]:
    """Reads + fills + updates at the global buffer and at DRAM, in MB (1e6 bytes), total and per
    data type, from the access table of ``sim.energy``."""
    table = access_energy(counts, arch)
    table = table[table.level.isin(["global_buffer", "DRAM"]) & (table.data_type != "compute")]
    table = table.assign(MB=table.count_words * table.data_type.map(arch.word_bits) / 8 / 1e6)
    out = {}
    for level, prefix in (("global_buffer", "glb"), ("DRAM", "dram")):
        rows = table[table.level == level]
        out[f"{prefix}_MB"] = float(rows.MB.sum())
        for data_type in ("weights", "inputs", "outputs"):
            out[f"{prefix}_{data_type}_MB"] = float(rows.MB[rows.data_type == data_type].sum())
    return out


def simulate(network, dims, arch: Architecture, mapping: Mapping, layer: str,
             rng: np.random.Generator) -> tuple[dict, bool, list[str]]:
    """Figures of one mapping: the closed form's, and the engine's compressed DRAM traffic on data
    at the published ifmap zero fractions; also the counters where engine and closed form differ."""
    # capacities were checked when the mapping was made (the chip's filter streaming for the
    # published ones: ``row_stationary_mapping``)
    nest = build_nest(dims, arch, mapping, layer_name=layer, check_capacity_fit=False)
    counts = closed_form_counts(nest, arch)
    figures = {"active_pes": counts.pes_used, "macs_M": counts.macs / 1e6, **traffic_MB(counts, arch)}
    data = layer_data(network, layer, batch=BATCH, activations=None, data=published_profile(NETWORK), rng=rng)
    engine = run_engine(nest, arch, *data.tensors, raw_network_input=data.raw_network_input,
                        output_values=data.output_values).counts
    bits = dram_bits(engine, arch)
    for d in ("weights", "inputs", "outputs"):
        figures[f"dram_compressed_{d}_MB"] = bits[f"dram_bits_compressed_{d}"] / 8 / 1e6
    figures["dram_compressed_MB"] = sum(figures[f"dram_compressed_{d}_MB"] for d in ("weights", "inputs", "outputs"))
    figures["rle_reduction"] = figures["dram_MB"] / figures["dram_compressed_MB"]
    figures.update({k: data.densities.get(k) for k in ("input_density_requested", "input_density_achieved",
                                                       "output_density_achieved")})
    figures.update(latency_figures(engine.timing, arch))
    differences = engine.differences(counts)
    return figures, not differences, differences


def latency_figures(t, arch: Architecture) -> dict:
    """The engine's cycles and latencies (``sim.timing``). Total latency: every cycle of the layer
    (eyeriss_v1 stops the array while ifmaps load from and ofmaps drain to DRAM, as the chip does,
    so nothing hides them); processing latency: the total without the DRAM stalls, the part the
    chip's "processing latency" measures."""
    per_ms = arch.clock_mhz * 1e3
    return {"cycles_total": t.cycles_total, "cycles_compute": t.cycles_compute,
            "cycles_stall_dram": t.cycles_stall_dram, "cycles_stall_buffer": t.cycles_stall_buffer,
            "cycles_stall_noc": t.cycles_stall_noc,
            "processing_latency_ms": (t.cycles_total - t.cycles_stall_dram) / per_ms,
            "total_latency_ms": t.cycles_total / per_ms}


def _row(layer: str, kind: str, params: RowStationaryParams, figures: dict, published: pd.Series,
         note: str, engine_agrees: bool | None, dims) -> dict:
    row = {"layer": layer, "mapping": kind, "expressible": bool(figures), "note": note,
           **params.as_dict(), "engine_agrees": engine_agrees,
           "active_pes_published": int(published.active_pes),
           "macs_M_published": float(published.macs_M),
           "glb_MB_published": float(published.glb_MB),
           "dram_uncompressed_MB_published_approx": float(published.dram_uncompressed_MB_approx),
           "dram_compressed_MB_published": float(published.dram_MB),
           "rle_reduction_published": float(published.dram_uncompressed_MB_approx / published.dram_MB),
           "processing_latency_ms_published": float(published.processing_latency_ms),
           "total_latency_ms_published": float(published.total_latency_ms),
           # passes over q*r input channels: round trips of every kept psum through the buffer
           "channel_passes": dims.C // (params.q * params.r) if figures else None}
    row.update(figures)
    for ratio, sim, pub in (("active_pes_ratio", "active_pes", "active_pes_published"),
                            ("macs_ratio", "macs_M", "macs_M_published"),
                            ("glb_ratio", "glb_MB", "glb_MB_published"),
                            ("dram_ratio", "dram_MB", "dram_uncompressed_MB_published_approx"),
                            ("dram_compressed_ratio", "dram_compressed_MB", "dram_compressed_MB_published"),
                            ("processing_latency_ratio", "processing_latency_ms", "processing_latency_ms_published"),
                            ("total_latency_ratio", "total_latency_ms", "total_latency_ms_published")):
        row[ratio] = row[sim] / row[pub] if figures else None
    return row


def validate(layers: tuple[str, ...], arch: Architecture, seed: int,
             *, alternatives: bool) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The table (one row per layer x mapping) and the loop nest of every simulated mapping (the
    engine's synthetic data of each layer is drawn from ``default_rng((seed, layer index))``)."""
    network = networks.get(NETWORK, seed=seed)
    rows = []
    nests: dict[str, dict] = {}
    for layer in layers:
        published = PUBLISHED.set_index("layer").loc[layer]
        params = RowStationaryParams(**{k: int(published[k]) for k in PARAMS})
        dims = network.loop_dims(layer, batch=BATCH)
        try:
            mapping = row_stationary_mapping(dims, arch, **params.as_dict(), layer_name=layer,
                                             stream_filters=True)
        except RowStationaryError as exc:
            rows.append(_row(layer, "published", params, {}, published, str(exc), None, dims))
            if not alternatives:
                continue
            for kind, choice in (
                ("nearest_expressible", nearest_row_stationary(dims, arch, params, layer)),
                ("default_search", default_row_stationary(dims, arch, layer)),
            ):
                changed = [f"{k} {getattr(params, k)}->{getattr(choice.params, k)}"
                           for k in PARAMS if getattr(params, k) != getattr(choice.params, k)]
                note = (f"NOT the chip's mapping: {kind.replace('_', ' ')} RS parameters "
                        f"(changed from published: {', '.join(changed) or 'none'})")
                figures, agrees, differences = simulate(network, dims, arch, choice.mapping, layer,
                                                        _layer_rng(seed, layer))
                if differences:
                    print(f"{layer} {kind}: engine and closed form DIFFER: {'; '.join(differences)}")
                nests[f"{layer}/{kind}"] = choice.mapping.to_dict()
                rows.append(_row(layer, kind, choice.params, figures, published, note, agrees, dims))
            continue
        figures, agrees, differences = simulate(network, dims, arch, mapping, layer, _layer_rng(seed, layer))
        if differences:
            print(f"{layer}: engine and closed form DIFFER: {'; '.join(differences)}")
        rows.append(_row(layer, "published", params, figures, published,
                         published_note(dims, arch, params, mapping, layer), agrees, dims))
        nests[f"{layer}/published"] = mapping.to_dict()
    return pd.DataFrame(rows, columns=COLUMNS).astype({c: "Int64" for c in INTEGER_COLUMNS}), nests


def published_note(dims, arch: Architecture, params: RowStationaryParams, mapping: Mapping, layer: str) -> str:
    """How the chip's mapping is expressed: remainders and filter streaming, where a layer uses them."""
    nest = build_nest(dims, arch, mapping, layer_name=layer, check_capacity_fit=False)
    notes = []
    if nest.parts:
        (full, d, _), (last, _, _) = nest.parts
        notes.append(f"temporal remainder: {getattr(full.dims, d) // params.e} passes of e={params.e} ofmap "
                     f"rows on {full.total_spatial} PEs, then one of {getattr(last.dims, d)} rows on "
                     f"{last.total_spatial} PEs (starting cold)")
    for part in [p for p, _, _ in nest.parts] or [nest]:
        if part.guarded:
            idle = part.slots(len(arch.levels) - 1) - part.total_spatial
            notes.append(f"spatial remainder: the {dims.R} x {params.e} PE set folded onto "
                         f"{arch.levels[arch.level_index('ifmap_spad')].fanout_x} columns, {idle} PEs idle")
    whole = buffer_filter_words(nest)
    partition = arch.levels[arch.level_index("global_buffer")].partition_words.get("weights")
    if partition is not None and whole > partition:
        pass_words = params.p * params.t * params.q * params.r * dims.R * dims.S
        notes.append(f"filters streamed: the buffer's m-filter tile ({whole} words) exceeds its "
                     f"{partition}-word filter partition, one processing pass's ({pass_words} words) fits")
    return "; ".join(notes)


def _layer_rng(seed: int, layer: str) -> np.random.Generator:
    return np.random.default_rng((seed, int(PUBLISHED.index[PUBLISHED.layer == layer][0])))


def report_gaps(table: pd.DataFrame, dims_of: dict) -> list[str]:
    """One line per figure outside its target, with the likely cause read off the breakdown."""
    lines = []
    for row in table[table.expressible].itertuples():
        label = f"{row.layer} ({row.mapping})"
        foreign = "not the chip's mapping (see note); " if row.mapping != "published" else ""
        if row.active_pes != row.active_pes_published:
            lines.append(f"{label}: active PEs {row.active_pes} vs published {row.active_pes_published}; "
                         f"likely cause: {foreign.rstrip('; ') or 'the placement of the PE sets differs'}")
        if abs(row.glb_ratio - 1) > GLB_TOLERANCE:
            lines.append(f"{label}: global buffer {row.glb_MB:.1f} MB vs published "
                         f"{row.glb_MB_published:.1f} MB ({row.glb_ratio - 1:+.0%}, target "
                         f"+-{GLB_TOLERANCE:.0%}); likely cause: {foreign}"
                         f"{buffer_cause(row, dims_of[row.layer])}")
        if abs(row.dram_ratio - 1) > DRAM_TOLERANCE:
            cause = (foreign + "DRAM traffic follows m, n, e and q*r" if foreign else
                     "the published uncompressed figure is approximate")
            lines.append(f"{label}: DRAM {row.dram_MB:.2f} MB vs published uncompressed "
                         f"~{row.dram_uncompressed_MB_published_approx:.1f} MB "
                         f"({row.dram_ratio - 1:+.0%}, target +-{DRAM_TOLERANCE:.0%}); likely "
                         f"cause: {cause}")
        if abs(row.dram_compressed_ratio - 1) > DRAM_TOLERANCE:
            lines.append(f"{label}: compressed DRAM {row.dram_compressed_MB:.2f} MB vs published "
                         f"{row.dram_compressed_MB_published:.1f} MB ({row.dram_compressed_ratio - 1:+.0%}, "
                         f"target +-{DRAM_TOLERANCE:.0%}); likely cause: {foreign}{compression_cause(row)}")
        for kind in ("processing", "total"):
            ratio = getattr(row, f"{kind}_latency_ratio")
            if abs(ratio - 1) > LATENCY_TOLERANCE:
                lines.append(f"{label}: {kind} latency {getattr(row, f'{kind}_latency_ms'):.2f} ms vs published "
                             f"{getattr(row, f'{kind}_latency_ms_published'):.1f} ms ({ratio - 1:+.0%}, target "
                             f"+-{LATENCY_TOLERANCE:.0%}); likely cause: {foreign}{latency_cause(row, kind)}")
    return lines


def latency_cause(row, kind: str) -> str:
    """Which part of the simulated cycles the gap sits in."""
    compute_ms = row.cycles_compute / (row.cycles_total / row.total_latency_ms)
    per_ms = row.cycles_total / row.total_latency_ms
    if kind == "processing":
        return (f"{compute_ms:.2f} ms of MACs (one per active PE per cycle) plus {row.cycles_stall_noc / per_ms:.2f} ms "
                f"of NoC stalls (pass ramp-up and bus-bound steps) and {row.cycles_stall_buffer / per_ms:.2f} ms "
                "of buffer stalls; the chip's pass ramp-up and bus arbitration are modelled only by bus bandwidths")
    return (f"{row.cycles_stall_dram / per_ms:.2f} ms of DRAM stalls (ifmaps in and ofmaps out at the 64-bit, 60 MHz "
            "link, RLE-compressed, with the array stopped); the chip overlaps part of this traffic or moves less of it "
            f"(published total - processing = {row.total_latency_ms_published - row.processing_latency_ms_published:.1f} ms)")


def compression_cause(row) -> str:
    """Whether a compressed-traffic gap follows the uncompressed one or the RLE reduction."""
    reduction_ratio = row.rle_reduction / row.rle_reduction_published
    text = (f"uncompressed traffic {row.dram_ratio:.2f}x the chip's approximate figure, RLE reduction "
            f"{row.rle_reduction:.2f}x vs {row.rle_reduction_published:.2f}x published")
    if abs(reduction_ratio - 1) > abs(row.dram_ratio - 1):
        text += (f"; the reduction differs most: the simulated ofmaps are {row.output_density_achieved:.0%} "
                 "non-zero (computed with random filters), the chip's real ofmaps may hold more zeros, "
                 "and its uncompressed figure (the reduction's numerator) is approximate")
    else:
        text += "; the uncompressed traffic differs most (the mapping's refetches)"
    return text


def buffer_cause(row, dims) -> str:
    """Which data type dominates the simulated buffer traffic, and the reuse that sets it."""
    shares = {d: getattr(row, f"glb_{d}_MB") / row.glb_MB for d in ("weights", "inputs", "outputs")}
    top = max(shares, key=shares.get)
    per_mac = row.glb_MB / 2 / row.macs_M
    published_per_mac = row.glb_MB_published / 2 / row.macs_M_published
    text = f"{top} are {shares[top]:.0%} of the simulated buffer traffic; "
    if top == "outputs":
        psum_per_mac = 2 / (row.q * row.r * dims.R * dims.S)
        other_per_mac = (row.glb_weights_MB + row.glb_inputs_MB) / 2 / row.macs_M
        text += (f"every kept psum is read and updated once per pass over q*r = {row.q * row.r} "
                 f"input channels ({row.channel_passes} passes), 2/(q*r*R*S) = {psum_per_mac:.3f} "
                 f"psum accesses per MAC, where the chip measures {published_per_mac:.3f} buffer "
                 "accesses per MAC in all")
        if psum_per_mac >= published_per_mac:
            text += (": the psum term alone exceeds the chip's whole figure, so the chip probably "
                     "makes fewer psum round trips than q*r implies, or counts psum accesses "
                     "differently")
        else:
            text += (f": the psum term fits within it; the excess ({per_mac - published_per_mac:.3f} "
                     f"per MAC) is of the size of the ifmap and filter traffic ({other_per_mac:.3f} "
                     "per MAC, reads and fills), whose counting in the chip's figure (e.g. whether "
                     "fills from DRAM are included) is not stated")
    elif top == "inputs":
        text += (f"every ifmap value is read from the buffer once per group of p*t = {row.p * row.t} "
                 f"filters ({dims.M // (row.p * row.t)} groups); {per_mac:.3f} simulated vs "
                 f"{published_per_mac:.3f} published buffer accesses per MAC")
    else:
        text += (f"filters are reloaded for every {row.n} ifmaps and {row.e} ofmap rows; "
                 f"{per_mac:.3f} simulated vs {published_per_mac:.3f} published buffer accesses per MAC")
    return text


def plot(table: pd.DataFrame, path: Path) -> None:
    """Simulated vs published buffer and DRAM traffic, and the ratios, drawn from the CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table[table.expressible].reset_index(drop=True)
    labels = [row.layer if row.mapping == "published" else f"{row.layer}\n({row.mapping.split('_')[0]})"
              for row in rows.itertuples()]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(7, 1, figsize=(max(7.0, 1.3 * len(rows) + 2), 21), sharex=True)
    for ax, sim, pub, title in (
        (axes[0], "glb_MB", "glb_MB_published", "global buffer traffic (MB)"),
        (axes[1], "dram_MB", "dram_uncompressed_MB_published_approx", "DRAM traffic, uncompressed (MB)"),
        (axes[2], "dram_compressed_MB", "dram_compressed_MB_published",
         "DRAM traffic, RLE-compressed (MB; engine, ifmaps at the published zero fractions)"),
        (axes[3], "rle_reduction", "rle_reduction_published", "RLE reduction (uncompressed / compressed)"),
    ):
        draw_pair(ax, x, rows[sim], rows[pub], labels, title)
    draw_pair(axes[4], x, rows["processing_latency_ms"], rows["processing_latency_ms_published"], labels,
              "processing latency (ms, 200 MHz; engine schedule without DRAM stalls)")
    draw_pair(axes[5], x, rows["total_latency_ms"], rows["total_latency_ms_published"], labels,
              "total latency (ms, 200 MHz; with DRAM)")
    draw_ratios(axes[6], x, rows, labels)
    fig.suptitle(f"eyeriss_v1 row-stationary vs the Eyeriss chip, AlexNet at batch {BATCH}\n"
                 "(labels in parentheses: not the chip's mapping, see the CSV's note)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_pair(ax, x, simulated, published, labels, title: str) -> None:
    ax.bar(x - 0.2, simulated, 0.4, label="simulated")
    ax.bar(x + 0.2, published, 0.4, label="published (JSSC17)")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def draw_ratios(ax, x, rows: pd.DataFrame, labels) -> None:
    ax.axhspan(1 - GLB_TOLERANCE, 1 + GLB_TOLERANCE, color="tab:blue", alpha=0.12)
    ax.axhspan(1 - DRAM_TOLERANCE, 1 + DRAM_TOLERANCE, color="tab:orange", alpha=0.08)
    ax.axhline(1.0, color="black", linewidth=0.8)
    for offset, column, name in ((-0.3, "active_pes_ratio", "active PEs"),
                                 (-0.1, "glb_ratio", "global buffer"),
                                 (0.1, "dram_ratio", "DRAM uncompressed"),
                                 (0.3, "dram_compressed_ratio", "DRAM compressed")):
        ax.bar(x + offset, rows[column], 0.2, label=name)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_title("simulated / published (bands: targets)", fontsize=9)
    ax.legend(fontsize=7)


def manifest(args: argparse.Namespace, arch: Architecture, layers: tuple[str, ...],
             mappings: dict[str, dict]) -> dict:
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                  text=True, check=False).stdout.strip() or None
    except OSError:
        revision = None
    config = Path(arch.source_file)
    return {
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "git_revision": revision,
        "architecture": arch.name,
        "architecture_file": str(config.relative_to(REPO_ROOT)) if config.is_relative_to(REPO_ROOT) else str(config),
        "architecture_sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
        "network": NETWORK, "batch": BATCH, "layers": list(layers), "quick": args.quick,
        "seed": args.seed,
        "published_source": PUBLISHED_SOURCE,
        "engine_data": {"ifmap_density": published_profile(NETWORK).description,
                        "ifmap_zeros": "uniformly at random (sim.synthetic)",
                        "filters": "He-random, dense (zoo network initialised from --seed)",
                        "ofmaps": "computed from the synthetic ifmaps and the filters, then ReLU",
                        "density_source": DENSITY_SOURCE},
        "targets": {"glb_relative": GLB_TOLERANCE, "dram_relative": DRAM_TOLERANCE,
                    "latency_relative": LATENCY_TOLERANCE},
        "mappings": mappings,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: CONV3 only (closed form + engine), no alternative mappings")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the engine's synthetic ifmaps")
    args = parser.parse_args(argv)

    arch = load_architecture(ARCHITECTURE)
    layers = QUICK_LAYERS if args.quick else tuple(PUBLISHED.layer)
    table, mappings = validate(layers, arch, args.seed, alternatives=not args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "validation.csv"
    table.to_csv(csv_path, index=False)
    plot(pd.read_csv(csv_path), args.out / "validation.png")
    (args.out / "manifest.json").write_text(json.dumps(manifest(args, arch, layers, mappings), indent=2) + "\n")

    shown = ["layer", "mapping", "active_pes", "active_pes_published", "macs_M", "macs_M_published",
             "glb_MB", "glb_MB_published", "glb_ratio", "dram_MB",
             "dram_uncompressed_MB_published_approx", "dram_ratio"]
    compressed = ["layer", "mapping", "input_density_requested", "input_density_achieved",
                  "output_density_achieved", "dram_compressed_MB", "dram_compressed_MB_published",
                  "dram_compressed_ratio", "rle_reduction", "rle_reduction_published"]
    print(f"AlexNet at batch {BATCH} on {arch.name}, closed-form model vs {PUBLISHED_SOURCE}\n")
    shown_table = table[shown].astype({c: float for c in shown if c in INTEGER_COLUMNS})  # NaN prints as "-"
    print(shown_table.to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep="-"))
    print("\nRLE-compressed DRAM traffic (engine; ifmaps synthetic at the published zero fractions, "
          "zeros uniformly placed; ofmaps computed with random filters, then ReLU)\n")
    print(table[compressed].to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep="-"))
    latency = ["layer", "mapping", "cycles_total", "cycles_compute", "cycles_stall_dram", "cycles_stall_noc",
               "processing_latency_ms", "processing_latency_ms_published", "processing_latency_ratio",
               "total_latency_ms", "total_latency_ms_published", "total_latency_ratio"]
    print(f"\nLatency at {arch.clock_mhz:.0f} MHz (engine schedule; processing = total - DRAM stalls)\n")
    print(table[latency].to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
    for row in table[~table.expressible].itertuples():
        print(f"\n{row.layer}: published mapping not expressible: {row.note}")
    for row in table[table.mapping != "published"].itertuples():
        print(f"{row.layer} {row.mapping}: {row.note}")
    checked = table[table.engine_agrees.notna()]
    for row in checked.itertuples():
        print(f"engine vs closed form (dense counters), {row.layer} {row.mapping}: "
              + ("agree on every counter" if row.engine_agrees else "DIFFER"))
    network = networks.get(NETWORK)
    gaps = report_gaps(table, {layer: network.loop_dims(layer, batch=BATCH) for layer in layers})
    print("\ngaps to the published figures:" if gaps else "\nall figures within their targets")
    for line in gaps:
        print(f"  - {line}")
    print(f"\nwrote {csv_path}, {args.out / 'validation.png'}, {args.out / 'manifest.json'}")
    return 0 if checked.engine_agrees.all() else 1


if __name__ == "__main__":
    sys.exit(main())
