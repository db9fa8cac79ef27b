"""Every bit packing of codes: bit planes (SAQ, CAQ) with their dot product against a float
query, and little-endian bit fields (LVQ, PQ's fast-scan nibbles).

Planes (docs/algorithms.md §8.1): a B-bit code over L dimensions (L a multiple of 64) is B planes
of L/64 uint64 words, most significant plane first. Bit i of word w holds dimension 64*w + i,
which is numpy's little-endian ``packbits`` order viewed as uint64. Fields (`pack_bits`): field j
of a row at bit j*B, little-endian, as LVQ stores its levels and PQ{M}x4fs its sub-quantizer pairs.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .config import JIT, PARALLEL_JIT


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


#: rows packed at once by the generic bit packer (bounds its (rows, D, B) temporary)
PACK_CHUNK = 4096


def pack_bits(codes: np.ndarray, B: int) -> np.ndarray:
    """(n, D) integers < 2^B to (n, ceil(D*B/8)) bytes, field j at bit j*B, little-endian."""
    n, D = codes.shape
    if B == 8:
        return codes.astype(np.uint8)
    if B == 16:
        return np.ascontiguousarray(codes.astype("<u2")).view(np.uint8).reshape(n, 2 * D)
    if B == 4:
        c = np.zeros((n, D + D % 2), np.uint8)
        c[:, :D] = codes
        return c[:, 0::2] | (c[:, 1::2] << 4)
    out = np.empty((n, (D * B + 7) // 8), np.uint8)
    shifts = np.arange(B, dtype=np.uint32)
    for s in range(0, n, PACK_CHUNK):
        bits = (codes[s:s + PACK_CHUNK, :, None].astype(np.uint32) >> shifts) & 1
        out[s:s + PACK_CHUNK] = np.packbits(bits.astype(np.uint8).reshape(len(bits), D * B), axis=1,
                                            bitorder="little")
    return out


def unpack_bits(packed: np.ndarray, D: int, B: int) -> np.ndarray:
    """Inverse of ``pack_bits``: (n, D) int64."""
    packed = np.asarray(packed)
    if B == 8:
        return packed[:, :D].astype(np.int64)
    if B == 4:
        out = np.empty((len(packed), 2 * packed.shape[1]), np.int64)
        out[:, 0::2], out[:, 1::2] = packed & 15, packed >> 4
        return out[:, :D]
    bits = np.unpackbits(packed, axis=1, bitorder="little")[:, :D * B].reshape(len(packed), D, B)
    return (bits.astype(np.int64) << np.arange(B)).sum(axis=2)


@intrinsic
def _code_dot(typingctx, code, start, nbytes, bits, q, q_start):
    """The kernel of ``code_dot``: 16 dimensions at a time in explicit LLVM vectors, so every target
    gets SIMD (AVX2: one 256-bit op per plane step), whatever the auto-vectorizer does."""
    sig = types.float32(code, start, nbytes, bits, q, q_start)

    def codegen(context, builder, signature, args):
        i16, i64, f32 = ir.IntType(16), ir.IntType(64), ir.FloatType()
        lanes16, floats8 = ir.VectorType(i16, 16), ir.VectorType(f32, 8)
        code_data = context.make_array(signature.args[0])(context, builder, args[0]).data
        q_data = context.make_array(signature.args[4])(context, builder, args[4]).data

        def as_i64(value):
            return value if value.type == i64 else builder.sext(value, i64)

        start, nbytes, bits, q_start = (as_i64(args[i]) for i in (1, 2, 3, 5))
        masks = ir.Constant(lanes16, [(1 << i) - (1 << 16 if i == 15 else 0) for i in range(16)])
        zeros16 = ir.Constant(lanes16, [0] * 16)
        digits = cgutils.alloca_once(builder, lanes16)
        acc = [cgutils.alloca_once_value(builder, ir.Constant(floats8, [0.0] * 8)) for _ in range(2)]
        with cgutils.for_range(builder, builder.lshr(nbytes, ir.Constant(i64, 1))) as chunks:
            chunk = chunks.index  # dimensions 16 chunk .. 16 chunk + 15: two bytes of each plane
            builder.store(zeros16, digits)
            with cgutils.for_range(builder, bits) as planes:
                offset = builder.add(builder.add(start, builder.mul(planes.index, nbytes)),
                                     builder.shl(chunk, ir.Constant(i64, 1)))
                word = builder.load(builder.bitcast(builder.gep(code_data, [offset]), i16.as_pointer()), align=1)
                spread = builder.shuffle_vector(builder.insert_element(ir.Constant(lanes16, None), word,
                                                                       ir.Constant(i64, 0)),
                                                ir.Constant(lanes16, None), ir.Constant(ir.VectorType(ir.IntType(32), 16), [0] * 16))
                bit = builder.zext(builder.icmp_unsigned("!=", builder.and_(spread, masks), zeros16), lanes16)
                # MSB plane first: digits = 2 digits + bit, lane i rebuilding dimension i's integer
                builder.store(builder.add(builder.shl(builder.load(digits), ir.Constant(lanes16, [1] * 16)), bit), digits)
            d = builder.load(digits)
            for h in range(2):
                part = builder.shuffle_vector(d, ir.Constant(lanes16, None),
                                              ir.Constant(ir.VectorType(ir.IntType(32), 8), list(range(8 * h, 8 * h + 8))))
                qpos = builder.add(q_start, builder.add(builder.shl(chunk, ir.Constant(i64, 4)), ir.Constant(i64, 8 * h)))
                qv = builder.load(builder.bitcast(builder.gep(q_data, [qpos]), floats8.as_pointer()), align=4)
                prod = builder.fmul(builder.uitofp(part, floats8), qv)
                builder.store(builder.fadd(builder.load(acc[h]), prod), acc[h])
        total = builder.fadd(builder.load(acc[0]), builder.load(acc[1]))
        out = builder.extract_element(total, ir.Constant(i64, 0))
        for i in range(1, 8):
            out = builder.fadd(out, builder.extract_element(total, ir.Constant(i64, i)))
        return out

    return sig, codegen


@numba.njit(**JIT)
def code_dot(code, start, nbytes, bits, q, q_start):
    r"""Float32 :math:`\sum_i c_i q_{q\_start + i}` for the ``bits``-bit integers c (bits <= 16)
    stored as planes (MSB first) of ``nbytes`` bytes each from byte ``code[start]`` on: the exact
    query, no quantization. ``code`` is a uint8 row and ``nbytes`` even (L is a multiple of 64).
    """
    return _code_dot(code, start, nbytes, bits, q, q_start)
