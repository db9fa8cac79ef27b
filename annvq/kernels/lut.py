r"""Product-quantization scans over CSR inverted lists: float ADC tables and 4-bit fast scan.

Residual PQ (quantizers.md §4.1) with the list centroid c, the (optionally rotated) query q and
sub-codebooks C_m:

* l2: :math:`\|q - c - \hat r\|^2 = \|q - c\|^2 + \sum_m T_{l,m}[j_m] - 2\langle q_m, C_{m,j_m}\rangle`
  with the per-list term :math:`T_{l,m}[j] = \|C_{m,j}\|^2 + 2\langle c_m, C_{m,j}\rangle`
  (faiss's "precomputed table"); the query part is built once per query, not per list.
* ip: :math:`-\langle q, c\rangle - \sum_m \langle q_m, C_{m,j_m}\rangle`: no per-list term.

Scores are smaller-is-better, as every codec's scan returns them.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .config import JIT, PARALLEL_JIT
from .topk import heap_push, heap_sort

#: vectors per fast-scan block (faiss's bbs): one 32-byte register of codes per sub-quantizer pair
BLOCK = 32


def _has_avx2() -> bool:
    """True when numba compiles for this host and the host has AVX2 (vpshufb on 32 bytes)."""
    if numba.config.CPU_NAME:  # a forced target (e.g. "generic" for portable caches)
        return False
    import llvmlite.binding as ll

    return bool(ll.get_host_cpu_features().get("avx2", False))


HAS_AVX2 = _has_avx2()


@numba.njit(**JIT)
def _query_tables(q, codebooks, out):
    r""":math:`\langle q_m, C_{m,j}\rangle` for every sub-quantizer m and centroid j."""
    M, ksub, dsub = codebooks.shape
    for m in range(M):
        for j in range(ksub):
            s = np.float32(0.0)
            for t in range(dsub):
                s += q[m * dsub + t] * codebooks[m, j, t]
            out[m, j] = s


@numba.njit(**JIT)
def _list_table(q, centroid, codebooks, ipt, term, lst, is_l2, out):
    """The ADC table of one (query, list) pair, without the list constant ||q - c||^2 or -<q, c>."""
    M, ksub, dsub = codebooks.shape
    if not is_l2:
        for m in range(M):
            for j in range(ksub):
                out[m, j] = -ipt[m, j]
    elif term.shape[0] > 0:
        for m in range(M):
            for j in range(ksub):
                out[m, j] = term[lst, m, j] - np.float32(2.0) * ipt[m, j]
    else:  # no precomputed table (too large): ||C||^2 + 2<c - q, C> on the fly
        for m in range(M):
            for j in range(ksub):
                s = np.float32(0.0)
                for t in range(dsub):
                    cj = codebooks[m, j, t]
                    s += cj * (cj + np.float32(2.0) * (centroid[m * dsub + t] - q[m * dsub + t]))
                out[m, j] = s


@numba.njit(**JIT)
def _list_constant(q, centroid, is_l2):
    """||q - c||^2 for l2, -<q, c> for ip."""
    s = np.float32(0.0)
    if is_l2:
        for t in range(q.shape[0]):
            diff = q[t] - centroid[t]
            s += diff * diff
    else:
        for t in range(q.shape[0]):
            s -= q[t] * centroid[t]
    return s


@numba.njit(**PARALLEL_JIT)
def pq_adc_scan(Q, centroids, probes, offsets, codes, codebooks, term, is_l2, k):
    """Top-k row positions per query by float ADC over (n, M) uint8 codes; one call per batch."""
    nq = Q.shape[0]
    M, ksub, _ = codebooks.shape
    out_s = np.full((nq, k), np.inf, dtype=np.float32)
    out_l = np.full((nq, k), -1, dtype=np.int64)
    for qi in numba.prange(nq):
        q = Q[qi]
        ipt = np.empty((M, ksub), dtype=np.float32)
        table = np.empty((M, ksub), dtype=np.float32)
        _query_tables(q, codebooks, ipt)
        for p in range(probes.shape[1]):
            lst = probes[qi, p]
            if lst < 0:
                continue
            base = _list_constant(q, centroids[lst], is_l2)
            if is_l2 and term.shape[0] > 0 and offsets[lst + 1] - offsets[lst] < ksub:
                # a short list reads its two table terms directly: fewer loads than building the table
                for row in range(offsets[lst], offsets[lst + 1]):
                    c = codes[row]
                    s = base
                    for m in range(M):
                        s += term[lst, m, c[m]] - np.float32(2.0) * ipt[m, c[m]]
                    heap_push(out_s[qi], out_l[qi], s, row)
                continue
            _list_table(q, centroids[lst], codebooks, ipt, term, lst, is_l2, table)
            for row in range(offsets[lst], offsets[lst + 1]):
                c = codes[row]
                s = base
                for m in range(M):
                    s += table[m, c[m]]
                heap_push(out_s[qi], out_l[qi], s, row)
        heap_sort(out_s[qi], out_l[qi])
    return out_s, out_l


@numba.njit(**JIT)
def quantize_table(table, qtable):
    r"""uint8 table with one shared step and a per-row bias: :math:`F_{m,j} \approx b_m + \Delta u_{m,j}`.

    ``qtable`` is (M, 32): each 16-entry row twice, once per 128-bit half of a shuffle register.
    Returns (sum_m b_m, Delta); an accumulated sum of M entries is off by at most M * Delta / 2.
    """
    M, ksub = table.shape
    bias = np.float32(0.0)
    span = np.float32(0.0)
    for m in range(M):
        lo = table[m, 0]
        hi = table[m, 0]
        for j in range(1, ksub):
            lo = min(lo, table[m, j])
            hi = max(hi, table[m, j])
        span = max(span, hi - lo)
        bias += lo
    delta = span / np.float32(255.0) if span > 0 else np.float32(1.0)
    inv = np.float32(1.0) / delta
    for m in range(M):
        lo = table[m, 0]
        for j in range(1, ksub):
            lo = min(lo, table[m, j])
        for j in range(ksub):
            u = np.uint8(np.floor((table[m, j] - lo) * inv + np.float32(0.5)))
            qtable[m, j] = u
            qtable[m, j + ksub] = u
    return bias, delta


@intrinsic
def _shuffle_pair(typingctx, lut_lo, lut_hi, codes, acc):
    """acc[v] += lut_lo[codes[v] & 15] + lut_hi[codes[v] >> 4] for 32 lanes: two AVX2 vpshufb."""
    sig = types.void(lut_lo, lut_hi, codes, acc)

    def codegen(context, builder, signature, args):
        bytes32 = ir.VectorType(ir.IntType(8), BLOCK)
        ints32 = ir.VectorType(ir.IntType(32), BLOCK)

        def pointer(i, vector):
            data = context.make_array(signature.args[i])(context, builder, args[i]).data
            return builder.bitcast(data, vector.as_pointer())

        shuffle = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(bytes32, [bytes32, bytes32]), "llvm.x86.avx2.pshuf.b")
        c = builder.load(pointer(2, bytes32), align=1)
        lo = builder.call(shuffle, [builder.load(pointer(0, bytes32), align=1),
                                    builder.and_(c, ir.Constant(bytes32, [15] * BLOCK))])
        hi = builder.call(shuffle, [builder.load(pointer(1, bytes32), align=1),
                                    builder.lshr(c, ir.Constant(bytes32, [4] * BLOCK))])
        total = builder.add(builder.zext(lo, ints32), builder.zext(hi, ints32))
        out = pointer(3, ints32)
        builder.store(builder.add(builder.load(out, align=4), total), out, align=4)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(**JIT)
def _accumulate_shuffle(qtable, block, acc):
    """Integer sums of one 32-vector block: one register shuffle per sub-quantizer (AVX2)."""
    for j in range(block.shape[0]):
        _shuffle_pair(qtable[2 * j], qtable[2 * j + 1], block[j], acc)


@numba.njit(**JIT)
def _accumulate_lookup(qtable, block, acc):
    """Integer sums of one 32-vector block by scalar table lookups (hosts without AVX2)."""
    for j in range(block.shape[0]):
        lo_t = qtable[2 * j]
        hi_t = qtable[2 * j + 1]
        codes = block[j]
        for v in range(BLOCK):
            acc[v] += np.int32(lo_t[codes[v] & 15]) + np.int32(hi_t[codes[v] >> 4])


_accumulate_block = _accumulate_shuffle if HAS_AVX2 else _accumulate_lookup


@numba.njit(**PARALLEL_JIT)
def pq4_fastscan(Q, centroids, probes, offsets, block_offsets, packed, codebooks, term, is_l2, k):
    """Top-k row positions per query over 4-bit codes packed in blocks of 32 vectors.

    ``packed[b, j, v]`` holds sub-quantizers 2j (low nibble) and 2j+1 (high nibble) of lane v of
    block b; list l owns blocks block_offsets[l]:block_offsets[l+1]. Per (query, list) the float
    table is quantized to uint8 and each block is summed in 32 integer lanes with 16-entry
    register shuffles (faiss's FastScan, §4.1), then de-quantized once per vector.
    """
    nq = Q.shape[0]
    M, ksub, _ = codebooks.shape
    out_s = np.full((nq, k), np.inf, dtype=np.float32)
    out_l = np.full((nq, k), -1, dtype=np.int64)
    for qi in numba.prange(nq):
        q = Q[qi]
        ipt = np.empty((M, ksub), dtype=np.float32)
        table = np.empty((M, ksub), dtype=np.float32)
        qtable = np.empty((M, 2 * ksub), dtype=np.uint8)
        acc = np.empty(BLOCK, dtype=np.int32)
        _query_tables(q, codebooks, ipt)
        for p in range(probes.shape[1]):
            lst = probes[qi, p]
            if lst < 0:
                continue
            _list_table(q, centroids[lst], codebooks, ipt, term, lst, is_l2, table)
            bias, delta = quantize_table(table, qtable)
            base = _list_constant(q, centroids[lst], is_l2) + bias
            first = offsets[lst]
            for b in range(block_offsets[lst], block_offsets[lst + 1]):
                acc[:] = 0
                _accumulate_block(qtable, packed[b], acc)
                start = first + (b - block_offsets[lst]) * BLOCK
                for v in range(min(BLOCK, offsets[lst + 1] - start)):
                    heap_push(out_s[qi], out_l[qi], base + delta * np.float32(acc[v]), start + v)
        heap_sort(out_s[qi], out_l[qi])
    return out_s, out_l


@numba.njit(**JIT)
def pack_blocks(offsets, codes, block_offsets, packed):
    """Scatter (n, M/2) nibble-pair rows into 32-lane blocks, list by list (padding lanes stay 0)."""
    for lst in range(offsets.shape[0] - 1):
        first = offsets[lst]
        for row in range(first, offsets[lst + 1]):
            b = block_offsets[lst] + (row - first) // BLOCK
            v = (row - first) % BLOCK
            for j in range(codes.shape[1]):
                packed[b, j, v] = codes[row, j]
