"""DRAM compression formats: how many bits one transferred chunk of values takes.

Compression applies per *chunk*: the elements one tile event moves between DRAM and its child
level (a tile delta fetched from DRAM, or the psums/outputs of a tile written back), in the order
they are laid out in memory (ascending flat index of the tensor). Each chunk is encoded on its own,
so the bit count depends on where the zeros are, not only on how many there are.

``none``
    ``n * value_bits``.

``rle`` (Eyeriss, JSSC 2017): the chunk is a sequence of (run, value) pairs, a ``RLE_RUN_BITS``
    = 5-bit count of zeros followed by a ``value_bits``-bit value; pairs are packed
    ``RLE_PAIRS`` = floor(63 / (5 + value_bits)) to a ``RLE_WORD_BITS`` = 64-bit word (three for
    16-bit values), and the spare bit of each word marks the chunk's last word. Runs longer than
    ``RLE_MAX_RUN`` = 31 zeros, and trailing zeros, use pairs whose value is a literal zero: a pair
    (r, 0) stands for r + 1 zeros. Hence a run of z zeros before a non-zero value takes
    ``z // 32 + 1`` pairs, and z trailing zeros ``ceil(z / 32)`` pairs. The chunk takes
    ``64 * ceil(pairs / RLE_PAIRS)`` bits (an empty chunk: 0).

``significance_map``: one bit per value (zero or not) plus ``value_bits`` per non-zero value.

DRAM energy of a compressed chunk: ``ceil(bits / (block_words * word_bits))`` vector accesses
(one access moves ``block_words`` words; rounded up per chunk). ``sim.kernels`` encodes chunks
while it counts; :func:`chunk_bits` is the same rule in plain Python for one chunk.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

RLE_RUN_BITS = 5
RLE_MAX_RUN = (1 << RLE_RUN_BITS) - 1  # 31
RLE_WORD_BITS = 64
COMPRESSION_CODE = {"none": 0, "rle": 1, "significance_map": 2}


def rle_pairs_per_word(value_bits: int) -> int:
    """(run, value) pairs in one 64-bit RLE word: the last bit is the final-word flag."""
    return (RLE_WORD_BITS - 1) // (RLE_RUN_BITS + value_bits)


def chunk_bits(values: Sequence[float], mode: str, value_bits: int) -> int:
    """Bits of one chunk (values in memory order) under ``mode`` (see the module docstring)."""
    n = len(values)
    if mode == "none":
        return n * value_bits
    nonzero = sum(1 for v in values if v != 0)
    if mode == "significance_map":
        return n + nonzero * value_bits
    if mode != "rle":
        raise ValueError(f"unknown compression mode {mode!r}; one of {sorted(COMPRESSION_CODE)}")
    pairs = run = 0
    for v in values:
        if v == 0:
            run += 1
        else:
            pairs += run // (RLE_MAX_RUN + 1) + 1
            run = 0
    pairs += -(-run // (RLE_MAX_RUN + 1))
    return RLE_WORD_BITS * math.ceil(pairs / rle_pairs_per_word(value_bits))
