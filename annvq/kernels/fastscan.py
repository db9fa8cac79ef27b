"""FastScan: 4-bit codes of 32 vectors summed through 16-entry uint8 tables held in registers.

faiss's FastScan (docs/algorithms.md §3.3, §8.2), used by PQ ``x4fs`` and by SAQ's stage 1. Codes are
repacked per list in blocks of ``BLOCK`` vectors: ``packed[b, j, v]`` is byte column j of lane v
of block b, its low nibble indexing table row 2j and its high nibble row 2j+1 of a (rows, 16)
uint8 ``qtable``. Each row is broadcast to both 128-bit halves of a register, and one AVX2
``vpshufb`` then looks up a nibble for all 32 vectors at once.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .config import JIT

#: vectors per block (faiss's bbs): one 32-byte register of codes per byte column
BLOCK = 32
#: byte columns whose sums of two uint8 entries fit a uint16 lane
PAIRS_IN_16_BITS = 65535 // 510


def _has_avx2() -> bool:
    """True when numba compiles for this host and the host has AVX2 (vpshufb on 32 bytes)."""
    if numba.config.CPU_NAME:  # a forced target (e.g. "generic" for portable caches)
        return False
    import llvmlite.binding as ll

    return bool(ll.get_host_cpu_features().get("avx2", False))


HAS_AVX2 = _has_avx2()


def _shuffle_accumulator(lane_bits: int):
    """An intrinsic adding the table lookups of block b's byte columns to acc (32 int32): per
    column two vpshufb (low / high nibble) summed in registers, over ``planes`` runs of ``width``
    columns from j0, the total doubled before each run (bit planes, most significant first:
    acc += sum_p 2^(planes-1-p) lookups(p)).

    With ``lane_bits`` 16 the 32 looked-up bytes are read as 16 uint16 words, as faiss's
    FastScan does, without widening them: ``whole`` sums the words (even vector + 256 x odd
    vector) and ``high`` the words shifted down 8 (the odd vectors); modulo 2^16,
    whole - 256 high is the even vectors' sum, exact while it fits 16 bits. Per column that is
    an add, a shift and an add per lookup, where widening each to 16-bit lanes took three
    instructions and two adds: 0.70x the time a block in cache, 0.76-0.78x from memory. With
    32 the lookups are widened to 32-bit lanes."""

    @intrinsic
    def accumulate(typingctx, qtable, packed, b, j0, width, planes, acc):
        sig = types.void(qtable, packed, b, j0, width, planes, acc)

        def codegen(context, builder, signature, args):
            bytes32 = ir.VectorType(ir.IntType(8), BLOCK)
            bytes16 = ir.VectorType(ir.IntType(8), 16)
            ints32 = ir.VectorType(ir.IntType(32), BLOCK)
            i64 = ir.IntType(64)
            lane_count = ir.Constant(i64, BLOCK)
            tables = context.make_array(signature.args[0])(context, builder, args[0])
            codes = context.make_array(signature.args[1])(context, builder, args[1])
            out = builder.bitcast(context.make_array(signature.args[6])(context, builder, args[6]).data,
                                  ints32.as_pointer())

            def as_i64(value):
                return value if value.type == i64 else builder.sext(value, i64)

            block, start, run, planes = (as_i64(a) for a in args[2:6])
            columns = builder.extract_value(codes.shape, 1)
            first = builder.mul(builder.add(builder.mul(block, columns), start), lane_count)
            shuffle = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(bytes32, [bytes32, bytes32]), "llvm.x86.avx2.pshuf.b")
            sums = (_WordSums if lane_bits == 16 else _WideSums)(builder)

            def load(base, offset):
                return builder.load(builder.bitcast(builder.gep(base, [offset]), bytes32.as_pointer()), align=1)

            def table(offset):  # a 16-byte row in both halves (vbroadcasti128)
                row = builder.load(builder.bitcast(builder.gep(tables.data, [offset]), bytes16.as_pointer()), align=1)
                return builder.shuffle_vector(row, row, ir.Constant(ir.VectorType(ir.IntType(32), BLOCK),
                                                                    list(range(16)) * 2))

            with cgutils.for_range(builder, planes) as plane:
                sums.double()
                with cgutils.for_range(builder, run) as loop:
                    j = builder.add(builder.mul(plane.index, run), loop.index)
                    c = load(codes.data, builder.add(first, builder.mul(j, lane_count)))
                    lut = builder.mul(builder.add(start, j), ir.Constant(i64, 32))
                    sums.add(builder.call(shuffle, [table(lut), builder.and_(c, ir.Constant(bytes32, [15] * BLOCK))]))
                    sums.add(builder.call(shuffle, [table(builder.add(lut, ir.Constant(i64, 16))),
                                                    builder.lshr(c, ir.Constant(bytes32, [4] * BLOCK))]))
            builder.store(builder.add(builder.load(out, align=4), sums.result()), out, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return accumulate


class _WordSums:
    """Lookups summed as 16 uint16 words (see `_shuffle_accumulator`): ``whole`` and ``high``
    in registers, the 32 vectors' sums recovered once at the end, in vector order."""

    def __init__(self, builder):
        self.builder = builder
        self.words = ir.VectorType(ir.IntType(16), BLOCK // 2)
        self.whole = cgutils.alloca_once(builder, self.words)  # promoted to registers by LLVM
        self.high = cgutils.alloca_once(builder, self.words)
        for total in (self.whole, self.high):
            builder.store(self._splat(0), total)

    def _splat(self, value):
        return ir.Constant(self.words, [value] * (BLOCK // 2))

    def double(self):
        for total in (self.whole, self.high):
            self.builder.store(self.builder.shl(self.builder.load(total), self._splat(1)), total)

    def add(self, looked):
        b, word = self.builder, self.builder.bitcast(looked, self.words)
        b.store(b.add(b.load(self.whole), word), self.whole)
        b.store(b.add(b.load(self.high), b.lshr(word, self._splat(8))), self.high)

    def result(self):
        b = self.builder
        odd = b.load(self.high)
        even = b.sub(b.load(self.whole), b.shl(odd, self._splat(8)))
        order = [v // 2 + (BLOCK // 2) * (v % 2) for v in range(BLOCK)]  # even, odd, even, ...
        vectors = b.shuffle_vector(even, odd, ir.Constant(ir.VectorType(ir.IntType(32), BLOCK), order))
        return b.zext(vectors, ir.VectorType(ir.IntType(32), BLOCK))


class _WideSums:
    """Lookups widened to 32-bit lanes, one per vector: sums of over 128 columns' worth."""

    def __init__(self, builder):
        self.builder = builder
        self.lanes = ir.VectorType(ir.IntType(32), BLOCK)
        self.total = cgutils.alloca_once(builder, self.lanes)  # promoted to registers by LLVM
        builder.store(ir.Constant(self.lanes, [0] * BLOCK), self.total)

    def double(self):
        b = self.builder
        b.store(b.shl(b.load(self.total), ir.Constant(self.lanes, [1] * BLOCK)), self.total)

    def add(self, looked):
        b = self.builder
        b.store(b.add(b.load(self.total), b.zext(looked, self.lanes)), self.total)

    def result(self):
        return self.builder.load(self.total)


_shuffle16 = _shuffle_accumulator(16)
_shuffle32 = _shuffle_accumulator(32)


@numba.njit(**JIT, inline="always")
def _accumulate_shuffle(qtable, packed, b, j0, width, planes, acc):
    """Integer sums of block b's 32 vectors over ``planes`` runs of ``width`` columns from j0,
    each run weighted twice the next (bit planes, MSB first), by register shuffles (AVX2);
    16-bit lanes when the sums cannot overflow them (at most 128 columns' worth, as faiss's
    FastScan). Inlined: as a call it took its arrays on the stack twice a block (SAQ on
    pydocs-256-angular: the lookups of a query's blocks 6.9 us against 8.5)."""
    if width * ((1 << planes) - 1) <= PAIRS_IN_16_BITS:
        _shuffle16(qtable, packed, b, j0, width, planes, acc)
    else:
        _shuffle32(qtable, packed, b, j0, width, planes, acc)


@numba.njit(**JIT)
def _accumulate_lookup(qtable, packed, b, j0, width, planes, acc):
    """`_accumulate_shuffle` by scalar table lookups (hosts without AVX2)."""
    total = np.zeros(BLOCK, np.int32)
    for p in range(planes):
        for v in range(BLOCK):
            total[v] *= 2
        for j in range(j0 + p * width, j0 + (p + 1) * width):
            for v in range(BLOCK):
                c = packed[b, j, v]
                total[v] += np.int32(qtable[2 * j, c & 15]) + np.int32(qtable[2 * j + 1, c >> 4])
    for v in range(BLOCK):
        acc[v] += total[v]


accumulate_block = _accumulate_shuffle if HAS_AVX2 else _accumulate_lookup


@numba.njit(**JIT)
def _pack(offsets, columns, block_offsets, packed):
    """Scatter (n, ncols) rows into 32-lane blocks, list by list (padding lanes stay 0)."""
    for lst in range(offsets.shape[0] - 1):
        first = offsets[lst]
        for row in range(first, offsets[lst + 1]):
            b = block_offsets[lst] + (row - first) // BLOCK
            v = (row - first) % BLOCK
            for j in range(columns.shape[1]):
                packed[b, j, v] = columns[row, j]


def pack_blocks(offsets: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(block offsets per list, packed (blocks, ncols, BLOCK)) of CSR rows of columns (bytes for
    the shuffles, or per-vector factors laid out lane by lane); list l owns blocks
    block_offsets[l]:block_offsets[l+1]."""
    blocks = (np.diff(offsets) + BLOCK - 1) // BLOCK
    block_offsets = np.zeros(len(blocks) + 1, np.int64)
    np.cumsum(blocks, out=block_offsets[1:])
    packed = np.zeros((block_offsets[-1], columns.shape[1], BLOCK), columns.dtype)
    _pack(offsets, np.ascontiguousarray(columns), block_offsets, packed)
    return block_offsets, packed


@numba.njit(**JIT)
def quantize_rows(table, qtable, rowmin, span):
    r"""uint8 (M, 16) table with one shared step and a per-row bias: :math:`F_{m,j} \approx b_m + \Delta u_{m,j}`.

    Returns Delta; an accumulated sum of M entries is off by at most M * Delta / 2.
    """
    M, ksub = table.shape
    delta = span / np.float32(255.0) if span > 0 else np.float32(1.0)
    inv = np.float32(1.0) / delta
    for m in range(M):
        lo = rowmin[m]
        for j in range(ksub):
            qtable[m, j] = np.uint8(np.int32((table[m, j] - lo) * inv + np.float32(0.5)))
    return delta


@numba.njit(**JIT)
def subset_sum_tables(q, start, length, qtable, sums):
    r"""uint8 tables of a binary code's dot product with ``q[start:start + length]``.

    Row r = start/4 + g of ``qtable`` (rows, 16) gets the sums :math:`T_g[e] = \sum_t e_t q_{4g+t}`
    over the 16 subsets e of the 4 dimensions of group g (a nibble of a bit plane indexes them),
    quantized as :math:`T_g[e] \approx lo_g + \Delta u` with :math:`lo_g = \sum_t \min(q_{4g+t}, 0)`
    and :math:`\Delta = \max_g \sum_t |q_{4g+t}| / 255`. The dot product of a code is then
    :math:`\sum_g lo_g + \Delta \cdot acc`, each group off by at most Delta / 2.

    Returns (sum_g lo_g, Delta) and writes sum(q) and ||q||^2 over the range to ``sums``.
    """
    zero = np.float32(0.0)
    # A zero-based view: numba wraps negative indices, and for a loop from a runtime start that
    # check on every load keeps LLVM from vectorising it (docs/architecture.md, Decisions).
    x = q[start:start + length]
    total = squares = bias = zero
    for i in range(length):  # plain reductions, vectorised
        total += x[i]
        squares += x[i] * x[i]
        bias += min(x[i], zero)
    sums[0], sums[1] = total, squares
    span = zero
    for g in range(0, length, 4):
        span = max(span, abs(x[g]) + abs(x[g + 1]) + abs(x[g + 2]) + abs(x[g + 3]))
    step = span / np.float32(255.0) if span > 0 else np.float32(1.0)
    inv = np.float32(1.0) / step
    for g in range(0, length, 4):
        q0, q1, q2, q3 = x[g], x[g + 1], x[g + 2], x[g + 3]
        lo = min(q0, zero) + min(q1, zero) + min(q2, zero) + min(q3, zero)
        r = (start + g) // 4
        for e in range(16):
            v = (q0 if e & 1 else zero) + (q1 if e & 2 else zero) + (q2 if e & 4 else zero) + (q3 if e & 8 else zero)
            qtable[r, e] = np.uint8(np.int32((v - lo) * inv + np.float32(0.5)))
    return bias, step
