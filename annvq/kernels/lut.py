r"""Product quantization: encoding (`pq_codes`), and scans over CSR inverted lists with float ADC
tables and 4-bit fast scan.

Residual PQ (docs/algorithms.md §3.1) with the list centroid c, the (optionally rotated) query q and
sub-codebooks C_m:

* l2: :math:`\|q - c - \hat r\|^2 = \|q - c\|^2 + \sum_m T_{l,m}[j_m] - 2\langle q_m, C_{m,j_m}\rangle`
  with the per-list term :math:`T_{l,m}[j] = \|C_{m,j}\|^2 + 2\langle c_m, C_{m,j}\rangle`
  (faiss's "precomputed table"); the query part is built once per query, not per list.
* ip: :math:`-\langle q, c\rangle - \sum_m \langle q_m, C_{m,j_m}\rangle`: no per-list term.

Scores are smaller-is-better, as every codec's scan returns them.
"""

import numba
import numpy as np

from .config import JIT, PARALLEL_JIT
from .driver import ivf_topk, push
from .fastscan import BLOCK, accumulate_block, quantize_rows


@numba.njit(**PARALLEL_JIT)
def pq_codes(X, C, assign, books_t):
    """(n, M) uint8 codes of the residuals X[r] - C[assign[r]] (n, M dsub), formed row by row (no
    residual matrix to allocate): in every sub-space m the nearest of the ksub sub-centroids
    ``books_t[m]`` (dsub, ksub) by squared L2 computed directly, the first on ties, as faiss's
    ProductQuantizer.compute_codes. The loop runs across the sub-centroids, 8 per AVX2 step:
    fashion-mnist's 60,000 rows at PQ196x4 took 1.75 s as 196 faiss searches."""
    n = X.shape[0]
    M, dsub, ksub = books_t.shape
    out = np.empty((n, M), np.uint8)
    for r in numba.prange(n):
        dist = np.empty(ksub, np.float32)
        c_row = assign[r]
        for m in range(M):
            dist[:] = 0
            for t in range(dsub):
                x = X[r, m * dsub + t] - C[c_row, m * dsub + t]
                for c in range(ksub):
                    d = x - books_t[m, t, c]
                    dist[c] += d * d
            best = 0
            for c in range(1, ksub):
                if dist[c] < dist[best]:
                    best = c
            out[r, m] = best
    return out


@numba.njit(**JIT)
def _query_tables(q, books_t, out):
    r""":math:`\langle q_m, C_{m,j}\rangle` for every sub-quantizer m and centroid j.

    ``books_t`` is (M, dsub, ksub), so the inner loop runs over the ksub centroids contiguously.
    """
    M, dsub, ksub = books_t.shape
    for m in range(M):
        o = out[m]
        o[:] = 0
        for t in range(dsub):
            qt = q[m * dsub + t]
            b = books_t[m, t]
            for j in range(ksub):
                o[j] += qt * b[j]


@numba.njit(**JIT)
def _list_table(q, centroid, books_t, ipt, term, lst, is_l2, out):
    """The ADC table of one (query, list) pair, without the list constant ||q - c||^2 or -<q, c>."""
    M, dsub, ksub = books_t.shape
    if not is_l2:
        for m in range(M):
            for j in range(ksub):
                out[m, j] = -ipt[m, j]
    elif term.shape[0] > 0:  # one sequential pass over the list's slice (prefetch-friendly)
        t = term[lst].ravel()
        o = out.ravel()
        p = ipt.ravel()
        for i in range(o.shape[0]):
            o[i] = t[i] - np.float32(2.0) * p[i]
    else:  # no precomputed table (too large): ||C||^2 + 2<c - q, C> on the fly
        for m in range(M):
            o = out[m]
            o[:] = 0
            for t in range(dsub):
                diff = np.float32(2.0) * (centroid[m * dsub + t] - q[m * dsub + t])
                b = books_t[m, t]
                for j in range(ksub):
                    o[j] += b[j] * (b[j] + diff)


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


@numba.njit(**JIT)
def adc_sum(table, codes, row):
    r""":math:`\sum_m T[m, c_m]` over code row ``row`` in four independent partial sums, so the adds
    overlap. Indexed, not a row view: a view costs a reference count per row."""
    M = codes.shape[1]
    s0 = s1 = s2 = s3 = np.float32(0.0)
    m = 0
    while m + 4 <= M:
        s0 += table[m, codes[row, m]]
        s1 += table[m + 1, codes[row, m + 1]]
        s2 += table[m + 2, codes[row, m + 2]]
        s3 += table[m + 3, codes[row, m + 3]]
        m += 4
    while m < M:
        s0 += table[m, codes[row, m]]
        m += 1
    return (s0 + s1) + (s2 + s3)


@numba.njit(**JIT)
def _adc_begin(data, qi):
    """The query's inner-product tables, and for ip its (list-independent) ADC table."""
    Q, centroids, offsets, codes, books_t, term, is_l2 = data
    M, _, ksub = books_t.shape
    ipt = np.empty((M, ksub), dtype=np.float32)
    table = np.empty((M, ksub), dtype=np.float32)
    _query_tables(Q[qi], books_t, ipt)
    if not is_l2:
        _list_table(Q[qi], centroids[0], books_t, ipt, term, 0, is_l2, table)
    return ipt, table


@numba.njit(**JIT)
def _adc_list(data, scratch, qi, p, lst, scores, labels, live):
    Q, centroids, offsets, codes, books_t, term, is_l2 = data
    ipt, table = scratch
    q = Q[qi]
    if is_l2:
        _list_table(q, centroids[lst], books_t, ipt, term, lst, is_l2, table)
    base = _list_constant(q, centroids[lst], is_l2)
    for row in range(offsets[lst], offsets[lst + 1]):
        push(scores, labels, base + adc_sum(table, codes, row), row, live)


@numba.njit(**PARALLEL_JIT)
def pq_adc_scan(Q, centroids, probes, offsets, codes, books_t, term, is_l2, live, k):
    """Top-k row positions per query by float ADC over (n, M) uint8 codes; one call per batch."""
    return ivf_topk(_adc_begin, _adc_list, (Q, centroids, offsets, codes, books_t, term, is_l2),
                    probes, live, k)



@numba.njit(**JIT)
def _row_ranges(table, rowmin):
    """Row minima into ``rowmin``; returns (sum of row minima, largest row range)."""
    M, ksub = table.shape
    bias = np.float32(0.0)
    span = np.float32(0.0)
    for m in range(M):
        lo = table[m, 0]
        hi = table[m, 0]
        for j in range(1, ksub):
            v = table[m, j]
            lo = v if v < lo else lo
            hi = v if v > hi else hi
        rowmin[m] = lo
        span = max(span, hi - lo)
        bias += lo
    return bias, span


@numba.njit(**JIT)
def _l2_table_ranges(term, lst, ipt, table, rowmin):
    """The l2 table of list ``lst`` (as ``_list_table``) and its ``_row_ranges`` in one pass."""
    M, ksub = table.shape
    bias = np.float32(0.0)
    span = np.float32(0.0)
    for m in range(M):
        lo = np.float32(np.inf)
        hi = np.float32(-np.inf)
        for j in range(ksub):
            v = term[lst, m, j] - np.float32(2.0) * ipt[m, j]
            table[m, j] = v
            lo = v if v < lo else lo
            hi = v if v > hi else hi
        rowmin[m] = lo
        span = max(span, hi - lo)
        bias += lo
    return bias, span


@numba.njit(**JIT)
def _fastscan_begin(data, qi):
    """Scratch tables, and for ip the quantized table once: it does not depend on the list."""
    Q, centroids, offsets, block_offsets, packed, books_t, term, is_l2 = data
    M, _, ksub = books_t.shape
    ipt = np.empty((M, ksub), dtype=np.float32)
    table = np.empty((M, ksub), dtype=np.float32)
    qtable = np.empty((M, ksub), dtype=np.uint8)
    rowmin = np.empty(M, dtype=np.float32)
    acc = np.empty(BLOCK, dtype=np.int32)
    scale = np.zeros(2, dtype=np.float32)  # (bias, delta) of the quantized table
    _query_tables(Q[qi], books_t, ipt)
    if not is_l2:
        _list_table(Q[qi], centroids[0], books_t, ipt, term, 0, is_l2, table)
        scale[0], span = _row_ranges(table, rowmin)
        scale[1] = quantize_rows(table, qtable, rowmin, span)
    return ipt, table, qtable, rowmin, acc, scale


@numba.njit(**JIT)
def _fastscan_list(data, scratch, qi, p, lst, scores, labels, live):
    Q, centroids, offsets, block_offsets, packed, books_t, term, is_l2 = data
    ipt, table, qtable, rowmin, acc, scale = scratch
    q = Q[qi]
    if is_l2:
        if term.shape[0] > 0:
            bias, span = _l2_table_ranges(term, lst, ipt, table, rowmin)
        else:
            _list_table(q, centroids[lst], books_t, ipt, term, lst, is_l2, table)
            bias, span = _row_ranges(table, rowmin)
        scale[0] = bias
        scale[1] = quantize_rows(table, qtable, rowmin, span)
    base = _list_constant(q, centroids[lst], is_l2) + scale[0]
    delta = scale[1]
    first = offsets[lst]
    for b in range(block_offsets[lst], block_offsets[lst + 1]):
        acc[:] = 0
        accumulate_block(qtable, packed, b, 0, packed.shape[1], 1, acc)
        start = first + (b - block_offsets[lst]) * BLOCK
        for v in range(min(BLOCK, offsets[lst + 1] - start)):
            push(scores, labels, base + delta * np.float32(acc[v]), start + v, live)


@numba.njit(**PARALLEL_JIT)
def pq4_fastscan(Q, centroids, probes, offsets, block_offsets, packed, books_t, term, is_l2, live, k):
    """Top-k row positions per query over 4-bit codes packed in blocks of 32 vectors.

    ``packed[b, j, v]`` holds sub-quantizers 2j (low nibble) and 2j+1 (high nibble) of lane v of
    block b; list l owns blocks block_offsets[l]:block_offsets[l+1]. Per (query, list) the float
    table is quantized to uint8 and each block is summed in 32 integer lanes with 16-entry
    register shuffles (faiss's FastScan, docs/algorithms.md §3.2-3.3), then de-quantized once per vector.
    """
    return ivf_topk(_fastscan_begin, _fastscan_list,
                    (Q, centroids, offsets, block_offsets, packed, books_t, term, is_l2), probes, live, k)


@numba.njit(**JIT)
def pq4_fastscan_one(Q, centroids, probes, offsets, block_offsets, packed, books_t, term, is_l2, live, k):
    """`pq4_fastscan` on the calling thread, for a single query: no parallel launch (a
    fashion-mnist PQ196x4fs query: 0.82x the time at nprobe 1, 0.88x at 4, 0.98-1.01x at 16;
    PQ8's and LVQ's twins gained nothing and are not kept, docs/benchmarks.md)."""
    return ivf_topk(_fastscan_begin, _fastscan_list,
                    (Q, centroids, offsets, block_offsets, packed, books_t, term, is_l2), probes, live, k)
