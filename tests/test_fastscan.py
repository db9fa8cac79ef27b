"""FastScan blocks: packing rows into 32-lane blocks and summing nibble-table lookups."""

import numpy as np
import pytest

from annvq.kernels.fastscan import BLOCK, HAS_AVX2, _accumulate_lookup, _accumulate_shuffle, pack_blocks


def _expected(qtable, block, j0, j1, start):
    return start + sum(qtable[2 * j][block[j] & 15].astype(np.int32) + qtable[2 * j + 1][block[j] >> 4]
                       for j in range(j0, j1))


@pytest.mark.parametrize("pairs, j0, j1", [(6, 0, 6), (128, 0, 128), (131, 0, 131), (40, 11, 29), (140, 5, 139)])
def test_shuffle_accumulation_equals_scalar_lookups(pairs, j0, j1):
    """Columns [j0, j1) of one block, in 16-bit lanes up to 128 columns and 32-bit lanes above."""
    rng = np.random.default_rng(pairs + j0)
    qtable = rng.integers(0, 256, (2 * pairs, 16), dtype=np.uint8)
    qtable[:, 0] = 255  # the largest sums, to catch lane overflow
    packed = rng.integers(0, 256, (3, pairs, BLOCK), dtype=np.uint8)
    packed[1, :, :4] = 0
    expected = _expected(qtable, packed[1], j0, j1, 7)
    slow = np.full(BLOCK, 7, np.int32)
    _accumulate_lookup(qtable, packed, 1, j0, j1 - j0, 1, slow)
    np.testing.assert_array_equal(slow, expected)
    if HAS_AVX2:
        fast = np.full(BLOCK, 7, np.int32)
        _accumulate_shuffle(qtable, packed, 1, j0, j1 - j0, 1, fast)
        np.testing.assert_array_equal(fast, expected)


@pytest.mark.parametrize("width, planes", [(8, 3), (24, 2), (16, 4), (40, 3), (64, 1)])
def test_plane_runs_are_weighted_most_significant_first(width, planes):
    """acc += sum_p 2^(planes-1-p) (lookups of run p): 16-bit lanes while the weighted sums fit
    (width 8 and 3 planes: 56 columns' worth), 32-bit above (width 40 and 3 planes: 280)."""
    rng = np.random.default_rng(width * planes)
    j0 = 3
    qtable = rng.integers(0, 256, (2 * (j0 + width * planes), 16), dtype=np.uint8)
    qtable[:, 0] = 255
    packed = rng.integers(0, 256, (2, j0 + width * planes, BLOCK), dtype=np.uint8)
    packed[0, :, :4] = 0
    expected = 5 + sum(2 ** (planes - 1 - p) * (_expected(qtable, packed[0], j0 + p * width, j0 + (p + 1) * width, 0))
                       for p in range(planes))
    for accumulate in (_accumulate_lookup, _accumulate_shuffle) if HAS_AVX2 else (_accumulate_lookup,):
        acc = np.full(BLOCK, 5, np.int32)
        accumulate(qtable, packed, 0, j0, width, planes, acc)
        np.testing.assert_array_equal(acc, expected)


def test_pack_blocks_places_every_row_and_zero_pads():
    rng = np.random.default_rng(0)
    sizes = np.array([0, 5, 32, 33, 70])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    columns = rng.integers(1, 256, (offsets[-1], 9), dtype=np.uint8)
    block_offsets, packed = pack_blocks(offsets, columns)
    np.testing.assert_array_equal(np.diff(block_offsets), [0, 1, 1, 2, 3])
    for lst in range(len(sizes)):
        for r in range(sizes[lst]):
            b, v = block_offsets[lst] + r // BLOCK, r % BLOCK
            np.testing.assert_array_equal(packed[b, :, v], columns[offsets[lst] + r])
    used = sum(sizes)
    assert np.count_nonzero(packed.any(axis=1)) == used  # padding lanes stay zero


def test_subset_sum_tables_give_code_dot_within_half_a_step_per_group():
    """The table sum of a binary code equals <bits, q> up to Delta / 2 per 4-dim group."""
    from annvq.kernels.fastscan import subset_sum_tables

    rng = np.random.default_rng(3)
    q = rng.standard_normal(256).astype(np.float32)
    qtable = np.zeros((64, 16), np.uint8)
    sums = np.empty(2, np.float32)
    bias, step = subset_sum_tables(q, 64, 128, qtable, sums)
    assert np.all(qtable[:16] == 0) and np.all(qtable[48:] == 0)  # only rows 16..47 written
    assert sums == pytest.approx([q[64:192].sum(), (q[64:192] ** 2).sum()], rel=1e-5)
    bits = rng.integers(0, 2, (50, 128)).astype(np.uint8)
    nibbles = (bits.reshape(50, 32, 4) << np.arange(4)).sum(2)  # group g's nibble
    acc = qtable[16 + np.arange(32), nibbles].astype(np.int64).sum(1)
    exact = bits.astype(np.float64) @ q[64:192].astype(np.float64)
    assert np.all(np.abs(bias + step * acc - exact) <= 32 * step / 2 + 1e-4)
    assert np.abs(bias + step * acc - exact).mean() < 8 * step  # rounding errors mostly cancel
