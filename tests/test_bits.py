"""Bit-plane packing and the plane dot product against integer references (docs/algorithms.md §10.7)."""

import numpy as np
import pytest

from annvq.kernels.bits import code_dot, pack_planes, unpack_planes


@pytest.mark.parametrize("bits,length", [(1, 64), (3, 128), (8, 192), (13, 64)])
def test_pack_unpack_round_trip(bits, length):
    codes = np.random.default_rng(bits).integers(0, 2 ** bits, (7, length)).astype(np.uint16)
    words = pack_planes(codes, bits)
    assert words.dtype == np.uint64 and words.shape == (7, bits * length // 64)
    np.testing.assert_array_equal(unpack_planes(words, bits, length), codes)


def test_plane_layout_msb_first_and_bit_i_is_dimension_i():
    codes = np.zeros((1, 128), np.uint16)
    codes[0, 3] = 0b10   # only the MSB plane of a 2-bit code: plane 0, word 0, bit 3
    codes[0, 70] = 0b01  # only the LSB plane: plane 1, word 1 (dims 64..127), bit 6
    words = pack_planes(codes, 2)
    assert words.tolist() == [[1 << 3, 0, 0, 1 << 6]]


def test_code_dot_equals_integer_codes_times_query():
    rng = np.random.default_rng(2)
    q = rng.standard_normal(256).astype(np.float32)
    for bits in (1, 3, 8, 13):
        codes = rng.integers(0, 2 ** bits, (1, 192)).astype(np.uint16)
        codes[0, :5] = 2 ** bits - 1  # every bit set
        words = np.concatenate([[np.uint64(7)], pack_planes(codes, bits)[0]])  # one word before the planes
        expected = float(codes[0].astype(np.float64) @ q[64:].astype(np.float64))
        got = code_dot(words.view(np.uint8), 8, 24, bits, q, 64)
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-4)
