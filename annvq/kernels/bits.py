"""Bit planes: popcount, packing integer codes into 64-bit planes, and plane dot products.

Layout (ARCHITECTURE.md): a B-bit code over L dimensions (L a multiple of 64) is B planes of
L/64 uint64 words, most significant plane first. Bit i of word w holds dimension 64*w + i, which
is numpy's little-endian ``packbits`` order viewed as uint64.
"""

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from .config import JIT, PARALLEL_JIT


@intrinsic
def popcount(typingctx, x):
    """Set bits of a uint64 through LLVM's ctpop (one POPCNT instruction on x86-64)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[0], signature.args[0], types.uint64)
        return builder.ctpop(value)

    return types.uint64(x), codegen


@numba.njit(**PARALLEL_JIT)
def pack_planes(codes, bits):
    """Integer codes (n, L) in [0, 2^bits) -> (n, bits * L/64) uint64 planes, MSB plane first."""
    n, L = codes.shape
    words = L // 64
    out = np.zeros((n, bits * words), np.uint64)
    for r in numba.prange(n):
        for k in range(bits):
            shift = bits - 1 - k
            for w in range(words):
                word = np.uint64(0)
                for i in range(64):
                    word |= np.uint64((codes[r, 64 * w + i] >> shift) & 1) << np.uint64(i)
                out[r, k * words + w] = word
    return out


def unpack_planes(words: np.ndarray, bits: int, length: int) -> np.ndarray:
    """Inverse of ``pack_planes``: (n, bits * L/64) uint64 -> integer codes (n, L) int32."""
    raw = np.unpackbits(np.ascontiguousarray(words).view(np.uint8), axis=1, bitorder="little")
    codes = np.zeros((len(words), length), np.int32)
    for k in range(bits):
        codes |= raw[:, k * length:(k + 1) * length].astype(np.int32) << (bits - 1 - k)
    return codes


@numba.njit(**JIT)
def transpose8(x):
    """Transpose the 8x8 bit matrix held in a uint64 (bit 8r + c -> bit 8c + r; Hacker's Delight 7-3)."""
    t = (x ^ (x >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    return x ^ t ^ (t << np.uint64(28))


@numba.njit(**JIT)
def quantize_query(q, start, length, nbits, planes):
    """Round ``q[start:start + length]`` to ``lo + step * u``, u in [0, 2^nbits) with nbits <= 8, and
    write u's bit planes (LSB plane first) into ``planes`` (nbits, length/64) uint64.

    Returns (lo, step). Rounding to nearest keeps each coordinate within step/2 (quantizers.md
    §6.2). Eight u bytes at a time are packed in a word and bit-transposed, giving eight bits
    of every plane at once.
    """
    lo = q[start]
    hi = q[start]
    for i in range(start, start + length):
        lo = min(lo, q[i])
        hi = max(hi, q[i])
    step = (hi - lo) / np.float32(2 ** nbits - 1)
    if step <= 0:
        step = np.float32(1.0)
    inv = np.float32(1.0) / step
    for w in range(length // 64):
        for b in range(nbits):
            planes[b, w] = 0
        for g in range(8):
            base = start + 64 * w + 8 * g
            x = np.uint64(0)
            for j in range(8):
                x |= np.uint64(np.int32((q[base + j] - lo) * inv + np.float32(0.5))) << np.uint64(8 * j)
            x = transpose8(x)
            for b in range(nbits):
                planes[b, w] |= ((x >> np.uint64(8 * b)) & np.uint64(255)) << np.uint64(8 * g)
    return lo, step


@numba.njit(**JIT)
def plane_dot(code, start, count, planes, nbits):
    r"""Integer :math:`\sum_b 2^b \mathrm{popcount}(c \wedge u_b)` = <bits, u> over the ``count`` words
    ``code[start:start + count]``, and their popcount. Indices, not slices, keep arrays C-contiguous
    for numba."""
    acc = np.uint64(0)
    ones = np.uint64(0)
    for w in range(count):
        c = code[start + w]
        ones += popcount(c)
        for b in range(nbits):
            acc += popcount(c & planes[b, w]) << np.uint64(b)
    return acc, ones


@numba.njit(**JIT)
def code_dot(code, start, count, bits, q, q_start, digits, acc):
    r"""Float32 :math:`\sum_i c_i q_{q\_start + i}` for the ``bits``-bit integers c stored as planes
    (MSB first) of ``count`` words each from ``code[start]`` on: the exact query, no quantization.

    ``digits`` and ``acc`` are (64,) float32 scratch: each 64-dim word's integers are rebuilt
    plane by plane with a select per bit, then multiplied into a 64-lane accumulator, so there is
    one horizontal sum per call (LLVM vectorises both inner loops).
    """
    acc[:] = 0
    for w in range(count):
        digits[:] = 0
        for k in range(bits):
            c = code[start + k * count + w]
            weight = np.float32(2 ** (bits - 1 - k))
            for i in range(64):
                digits[i] += weight if (c >> np.uint64(i)) & np.uint64(1) else np.float32(0.0)
        base = q_start + 64 * w
        for i in range(64):
            acc[i] += digits[i] * q[base + i]
    return np.sum(acc)
