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
def quantize_query(q, nbits, planes):
    """Round q to ``lo + step * u`` with u in [0, 2^nbits) and write u's bit planes (LSB plane first).

    ``planes`` is (nbits, len(q)/64) uint64. Returns (lo, step). Rounding to nearest keeps each
    coordinate within step/2 (quantizers.md §6.2).
    """
    lo = q[0]
    hi = q[0]
    for i in range(q.shape[0]):
        lo = min(lo, q[i])
        hi = max(hi, q[i])
    step = (hi - lo) / np.float32(2 ** nbits - 1)
    if step <= 0:
        step = np.float32(1.0)
    planes[:, :] = 0
    for i in range(q.shape[0]):
        u = np.uint64(np.int64((q[i] - lo) / step + np.float32(0.5)))
        w = i >> 6
        bit = np.uint64(i & 63)
        for b in range(nbits):
            planes[b, w] |= ((u >> np.uint64(b)) & np.uint64(1)) << bit
    return lo, step


@numba.njit(**JIT)
def plane_dot(code, planes, nbits):
    r"""Integer :math:`\sum_b 2^b \mathrm{popcount}(code \wedge u_b)` = <code bits, u>, and popcount(code)."""
    acc = np.uint64(0)
    ones = np.uint64(0)
    for w in range(code.shape[0]):
        c = code[w]
        ones += popcount(c)
        for b in range(nbits):
            acc += popcount(c & planes[b, w]) << np.uint64(b)
    return acc, ones


@numba.njit(**JIT)
def float_plane_dot(code, q):
    r""":math:`\sum_i bit_i(code) \cdot q_i` in float32 (exact query, no quantization)."""
    s = np.float32(0.0)
    for w in range(code.shape[0]):
        c = code[w]
        base = w * 64
        for i in range(64):
            s += q[base + i] * np.float32((c >> np.uint64(i)) & np.uint64(1))
    return s
