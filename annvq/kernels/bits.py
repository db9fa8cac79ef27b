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
    """The kernel of ``code_dot`` in explicit LLVM vectors, so every target gets SIMD whatever the
    auto-vectorizer does: codes of at most 8 bits rebuild 32 dimensions per step in 8-bit lanes
    (AVX2: one 256-bit op per plane step), wider ones 16 dimensions in 16-bit lanes."""
    sig = types.float32(code, start, nbytes, bits, q, q_start)

    def codegen(context, builder, signature, args):
        i8, i16, i32, i64, f32 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64), ir.FloatType()
        floats8 = ir.VectorType(f32, 8)
        code_data = context.make_array(signature.args[0])(context, builder, args[0]).data
        q_data = context.make_array(signature.args[4])(context, builder, args[4]).data

        def as_i64(value):
            return value if value.type == i64 else builder.sext(value, i64)

        def const(value):
            return ir.Constant(i64, value)

        start, nbytes, bits, q_start = (as_i64(args[i]) for i in (1, 2, 3, 5))
        acc = [cgutils.alloca_once_value(builder, ir.Constant(floats8, [0.0] * 8)) for _ in range(2)]

        def chunks(lane, width):
            """Sum over chunks of ``width`` dimensions rebuilt in ``lane``-typed digit lanes."""
            lanes = ir.VectorType(lane, width)
            word_type = ir.IntType(width)  # the chunk's bits of one plane
            bits_of = ir.Constant(lanes, [1 << (i % lane.width) if i % lane.width < lane.width - 1 else
                                          -(1 << (lane.width - 1)) for i in range(width)]) if width == lane.width \
                else ir.Constant(lanes, [(1 << (i % 8)) - (256 if i % 8 == 7 else 0) for i in range(width)])
            zeros = ir.Constant(lanes, [0] * width)
            digits = cgutils.alloca_once(builder, lanes)
            with cgutils.for_range(builder, builder.udiv(nbytes, const(width // 8))) as loop:
                chunk = loop.index  # dimensions width * chunk .. + width - 1
                builder.store(zeros, digits)
                with cgutils.for_range(builder, bits) as planes:
                    offset = builder.add(builder.add(start, builder.mul(planes.index, nbytes)),
                                         builder.mul(chunk, const(width // 8)))
                    word = builder.load(builder.bitcast(builder.gep(code_data, [offset]), word_type.as_pointer()),
                                        align=1)
                    if width == lane.width:  # 16 lanes of 16 bits: every lane sees the whole word
                        spread = builder.shuffle_vector(
                            builder.insert_element(ir.Constant(lanes, None), word, const(0)),
                            ir.Constant(lanes, None), ir.Constant(ir.VectorType(i32, width), [0] * width))
                    else:  # 32 lanes of 8 bits: lane i sees byte i // 8 of the word
                        as_bytes = builder.bitcast(word, ir.VectorType(i8, width // 8))
                        spread = builder.shuffle_vector(as_bytes, ir.Constant(ir.VectorType(i8, width // 8), None),
                                                        ir.Constant(ir.VectorType(i32, width),
                                                                    [i // 8 for i in range(width)]))
                    bit = builder.zext(builder.icmp_unsigned("!=", builder.and_(spread, bits_of), zeros), lanes)
                    # MSB plane first: digits = 2 digits + bit, lane i rebuilding dimension i's integer
                    builder.store(builder.add(builder.shl(builder.load(digits), ir.Constant(lanes, [1] * width)),
                                              bit), digits)
                d = builder.load(digits)
                for h in range(width // 8):
                    part = builder.shuffle_vector(d, ir.Constant(lanes, None),
                                                  ir.Constant(ir.VectorType(i32, 8), list(range(8 * h, 8 * h + 8))))
                    qpos = builder.add(q_start, builder.add(builder.mul(chunk, const(width)), const(8 * h)))
                    qv = builder.load(builder.bitcast(builder.gep(q_data, [qpos]), floats8.as_pointer()), align=4)
                    prod = builder.fmul(builder.uitofp(part, floats8), qv)
                    builder.store(builder.fadd(builder.load(acc[h % 2]), prod), acc[h % 2])

        with builder.if_else(builder.icmp_signed("<=", bits, const(8))) as (narrow, wide):
            with narrow:
                chunks(i8, 32)
            with wide:
                chunks(i16, 16)
        total = builder.fadd(builder.load(acc[0]), builder.load(acc[1]))
        out = builder.extract_element(total, const(0))
        for i in range(1, 8):
            out = builder.fadd(out, builder.extract_element(total, const(i)))
        return out

    return sig, codegen


@intrinsic
def prefetch_row(typingctx, rows, j):
    """Start loading row j of a 2-d C-contiguous array into the cache (LLVM's prefetch, one per
    64-byte line), so rows about to be scored are fetched together instead of one miss at a time."""
    sig = types.void(rows, j)

    def codegen(context, builder, signature, args):
        i8p, i32, i64 = ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(64)
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        j = args[1] if args[1].type == i64 else builder.sext(args[1], i64)
        stride = builder.extract_value(arr.strides, 0)
        row = builder.gep(builder.bitcast(arr.data, i8p), [builder.mul(j, stride)])
        fetch = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                               "llvm.prefetch.p0i8")
        # the first line of the row, then every 64 bytes to its last byte
        lines = builder.udiv(builder.add(stride, ir.Constant(i64, 63)), ir.Constant(i64, 64))
        with cgutils.for_range(builder, builder.add(lines, ir.Constant(i64, 1))) as loop:
            at = builder.gep(row, [builder.mul(loop.index, ir.Constant(i64, 64))])
            builder.call(fetch, [at, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(**JIT)
def code_dot(code, start, nbytes, bits, q, q_start):
    r"""Float32 :math:`\sum_i c_i q_{q\_start + i}` for the ``bits``-bit integers c (bits <= 16)
    stored as planes (MSB first) of ``nbytes`` bytes each from byte ``code[start]`` on: the exact
    query, no quantization. ``code`` is a uint8 row and ``nbytes`` even (L is a multiple of 64).
    """
    return _code_dot(code, start, nbytes, bits, q, q_start)
