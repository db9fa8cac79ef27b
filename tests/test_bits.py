"""Bit-plane packing and popcount kernels against integer references (quantizers.md §6.4.8)."""

import numpy as np
import pytest

from annvq.kernels.bits import code_dot, pack_planes, plane_dot, quantize_query, unpack_planes


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


def reference_bits(words):
    return np.unpackbits(words.view(np.uint8), bitorder="little").astype(np.int64)


def test_popcount_plane_dot_equals_integer_reference():
    rng = np.random.default_rng(0)
    for nbits in (1, 4, 8):
        code = rng.integers(0, 2 ** 63, 5, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
        code[1] = np.uint64(0xFFFFFFFFFFFFFFFF)  # every bit set, including the top one
        code[2] = np.uint64(0)
        u = rng.integers(0, 2 ** nbits, 320).astype(np.uint16)
        planes = pack_planes(u[None], nbits)[0].reshape(nbits, 5)[::-1].copy()  # LSB plane first
        acc, ones = plane_dot(code, 0, len(code), planes, nbits)
        bits = reference_bits(code)
        assert int(acc) == int(bits @ u.astype(np.int64))
        assert int(ones) == int(bits.sum())


def test_quantized_query_within_half_a_step():
    rng = np.random.default_rng(1)
    q = rng.standard_normal(192).astype(np.float32)
    code = rng.integers(0, 2 ** 63, 3, dtype=np.int64).astype(np.uint64)
    for nbits in (4, 8):
        planes = np.zeros((nbits, 3), np.uint64)
        lo, step = quantize_query(q, 0, len(q), nbits, planes)
        u = sum(reference_bits(planes[b]) << b for b in range(nbits))
        assert u.min() == 0 and u.max() == 2 ** nbits - 1
        assert np.abs(lo + step * u - q).max() <= step / 2 * (1 + 1e-5)
        acc, ones = plane_dot(code, 0, len(code), planes, nbits)
        bits = reference_bits(code)
        approx = step * float(acc) + lo * float(ones)
        assert abs(approx - float(bits @ q)) <= step / 2 * bits.sum() * (1 + 1e-5)


def test_constant_query_quantizes_without_dividing_by_zero():
    planes = np.zeros((4, 1), np.uint64)
    lo, step = quantize_query(np.full(64, 2.5, np.float32), 0, 64, 4, planes)
    assert lo == 2.5 and step > 0 and not planes.any()


def test_code_dot_equals_integer_codes_times_query():
    rng = np.random.default_rng(2)
    q = rng.standard_normal(256).astype(np.float32)
    scratch = np.empty(64, np.float32), np.empty(64, np.float32)
    for bits in (1, 3, 8):
        codes = rng.integers(0, 2 ** bits, (1, 192)).astype(np.uint16)
        words = np.concatenate([[np.uint64(7)], pack_planes(codes, bits)[0]])  # one word before the planes
        expected = float(codes[0].astype(np.float64) @ q[64:].astype(np.float64))
        assert code_dot(words, 1, 3, bits, q, 64, *scratch) == pytest.approx(expected, rel=1e-5, abs=1e-4)
