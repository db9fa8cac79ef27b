r"""Exact float32 scans over CSR inverted lists, and exact re-scoring of candidates.

Scores are "smaller is better": for L2, :math:`\|q\|^2 + \|x\|^2 - 2\langle q, x\rangle`; for inner
product, :math:`-\langle q, x\rangle`. Both are :math:`n_q + n_x + \alpha\langle q, x\rangle` with
(n_q, n_x, alpha) = (||q||^2, ||x||^2, -2) or (0, 0, -1).
"""

import numba
import numpy as np

from .bits import prefetch_row
from .config import JIT, PARALLEL_JIT
from .driver import allowed, answers, ivf_topk, new_heaps
from .finite import query_rows
from .half import widen
from .topk import heap_push, heap_sort


@numba.njit(**JIT)
def dot(a, b):
    r""":math:`\sum_i a_i b_i` in float32; fastmath lets LLVM vectorise it."""
    s = np.float32(0.0)
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@numba.njit(**JIT)
def _flat_begin(data, qi):
    """||q||^2 for L2 (norms given), 0 for inner product."""
    Q, offsets, vectors, norms, alpha = data
    qq = np.zeros(1, np.float32)
    if norms.shape[0] > 0:
        qq[0] = dot(Q[qi], Q[qi])
    return (qq,)


@numba.njit(**JIT)
def _flat_list(data, scratch, qi, p, lst, scores, labels, live):
    Q, offsets, vectors, norms, alpha = data
    q = Q[qi]
    qq = scratch[0][0]
    has_norms = norms.shape[0] > 0  # inner product passes no norms
    for j in range(offsets[lst], offsets[lst + 1]):
        if allowed(live, j):
            s = np.float32(0.0)  # indexed, not dot(q, vectors[j]): a row view costs a refcount per row
            for i in range(q.shape[0]):
                s += q[i] * vectors[j, i]
            nx = norms[j] if has_norms else np.float32(0.0)
            heap_push(scores, labels, qq + nx + alpha * s, j)


@numba.njit(**PARALLEL_JIT)
def ivf_flat_scan(Q, probes, offsets, vectors, norms, alpha, live, k):
    """Top-k (full scores, positions) of every query over its probed lists, one call per batch:
    ``norms`` (n,) the rows' squared norms and alpha -2 for L2, no norms and alpha -1 for IP."""
    return ivf_topk(_flat_begin, _flat_list, (Q, offsets, vectors, norms, alpha), probes, live, k)


@numba.njit(**JIT)
def ivf_flat_scan_one(Q, probes, offsets, vectors, norms, alpha, live, k):
    """`ivf_flat_scan` on the calling thread, for a single query: no parallel launch (one
    random-xs-20 query over one list of about 140 rows: 2.95 us against 4.15 on one thread)."""
    return ivf_topk(_flat_begin, _flat_list, (Q, offsets, vectors, norms, alpha), probes, live, k)


@numba.njit(**JIT)
def flat_answer_one(Q, ids, cosine, C, n, offsets, vectors, norms, alpha, live, k):
    """A single query (1, dim) as `Index.search` answers it, in one call: checked and, for
    ``cosine``, normalised (`finite.query_rows`), its n nearest of the centroids C found
    (`nearest_rows`), scanned (`ivf_flat_scan_one`), and the reported distances and the ids of
    ``ids`` returned (`driver.answers`) with the row positions, and bad as in `scan.saq_answer_one`."""
    X, bad = query_rows(Q, cosine)
    if bad >= 0:
        return np.empty((0, k), np.float32), np.empty((0, k), np.int64), np.empty((0, k), np.int64), bad
    l2 = alpha == np.float32(-2.0)
    probes = nearest_rows(X, C, n, l2) if C.shape[0] > 1 else np.zeros((1, 1), np.int64)
    scores, rows = ivf_flat_scan_one(X, probes, offsets, vectors, norms, alpha, live, k)
    distances, found = answers(scores, rows, ids, l2)
    return distances, found, rows, bad


@numba.njit(**JIT, inline="always")
def row_score(X, r, C, j, l2):
    """Squared L2 distance, or minus the inner product, of rows X[r] and C[j], read in place."""
    s = np.float32(0.0)
    if l2:
        for i in range(X.shape[1]):
            t = X[r, i] - C[j, i]
            s += t * t
    else:
        for i in range(X.shape[1]):
            s -= X[r, i] * C[j, i]
    return s


#: rows `ivf_raw_scan` asks the memory for ahead of the one it scores: a sparse filter's rows are
#: scattered, so each is a fresh cache miss the hardware prefetcher cannot foresee
RAW_AHEAD = 6


@numba.njit(**JIT)
def _raw_begin(data, qi):
    """A buffer for the allowed rows of one list."""
    offsets = data[1]
    longest = 0
    for lst in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[lst + 1] - offsets[lst])
    return (np.empty(longest, np.int64),)


@numba.njit(**JIT)
def _raw_list(data, scratch, qi, p, lst, scores, labels, live):
    Q, offsets, vectors, l2 = data
    rows = scratch[0]
    n = 0
    for j in range(offsets[lst], offsets[lst + 1]):
        if allowed(live, j):
            rows[n] = j
            n += 1
    for t in range(min(RAW_AHEAD, n)):
        prefetch_row(vectors, rows[t])
    for t in range(n):
        if t + RAW_AHEAD < n:
            prefetch_row(vectors, rows[t + RAW_AHEAD])
        heap_push(scores, labels, row_score(Q, qi, vectors, np.uint64(rows[t]), l2), rows[t])


@numba.njit(**PARALLEL_JIT)
def ivf_raw_scan(Q, probes, offsets, vectors, l2, live, k):
    """Top-k (full scores, positions) of every query over the rows of its probed lists that
    ``live`` allows, scored in place from the raw vectors: a sparse filter's scan reads only
    the rows it lets through. Full squared L2, or minus the inner product."""
    return ivf_topk(_raw_begin, _raw_list, (Q, offsets, vectors, l2), probes, live, k)


@numba.njit(**JIT)
def ivf_raw_scan_one(Q, probes, offsets, vectors, l2, live, k):
    """`ivf_raw_scan` on the calling thread, for a single query: no parallel launch (~5 us)."""
    return ivf_topk(_raw_begin, _raw_list, (Q, offsets, vectors, l2), probes, live, k)


@numba.njit(**JIT, inline="always")
def _rows_topk(Q, qi, rows, vectors, l2, scores, labels):
    """Query qi's heap over the given rows of ``vectors``, sorted."""
    for t in range(rows.shape[0]):
        j = np.uint64(rows[t])  # unsigned: no wraparound check on every load
        heap_push(scores, labels, row_score(Q, qi, vectors, j, l2), rows[t])
    heap_sort(scores, labels)


@numba.njit(**PARALLEL_JIT)
def rows_flat_scan(Q, rows, vectors, l2, k):
    """Top-k (full scores, rows) of every query over the given rows of ``vectors``, read in place
    rather than gathered into a copy: the exhaustive scan of the few rows a selective filter
    allows. Full squared L2, or minus the inner product."""
    out_s, out_l = new_heaps(Q.shape[0], k)
    for qi in numba.prange(Q.shape[0]):
        _rows_topk(Q, qi, rows, vectors, l2, out_s[qi], out_l[qi])
    return out_s, out_l


@numba.njit(**JIT)
def rows_flat_scan_one(Q, rows, vectors, l2, k):
    """`rows_flat_scan` of a single query on the calling thread: no parallel launch (~5 us)."""
    out_s, out_l = new_heaps(1, k)
    _rows_topk(Q, 0, rows, vectors, l2, out_s[0], out_l[0])
    return out_s, out_l


@numba.njit(**PARALLEL_JIT)
def rerank_exact(Q, candidates, vectors, alpha, k):
    """Re-score candidate positions (-1 = none) exactly and keep the best k per query (full
    scores: L2 includes ||q||^2). One call per batch."""
    nq = Q.shape[0]
    out_s, out_l = new_heaps(nq, k)
    for qi in numba.prange(nq):
        q = Q[qi]
        qq = dot(q, q) if alpha == -2.0 else np.float32(0.0)
        for c in range(candidates.shape[1]):
            j = candidates[qi, c]
            if j < 0:
                continue
            x = vectors[j]
            nx = dot(x, x) if alpha == -2.0 else np.float32(0.0)
            heap_push(out_s[qi], out_l[qi], qq + nx + alpha * dot(q, x), j)
        heap_sort(out_s[qi], out_l[qi])
    return out_s, out_l


@numba.njit(**JIT)
def small_matmul(X, W):
    """X @ W in float32 on one thread, for a handful of rows: W is streamed once, row by row,
    and a row that only zero coordinates meet is not read (half of W for a Fashion-MNIST image).
    W is float32, or float16 bits (`half.as_half_bits`), which halve what is read. Four rows of
    W are added per pass over the output, a quarter of the output's loads and stores (one
    fashion-mnist query by a 784 x 832 float16 W: 16-18 us against 18-25)."""
    n, d = X.shape
    m = W.shape[1]
    out = np.zeros((n, m), np.float32)
    nonzero = np.empty(d, np.int64)
    for r in range(n):
        count = 0
        for i in range(d):
            if X[r, i] != 0:
                nonzero[count] = i
                count += 1
        o = out[r]
        g = 0
        while g + 4 <= count:
            i0, i1, i2, i3 = nonzero[g], nonzero[g + 1], nonzero[g + 2], nonzero[g + 3]
            x0, x1, x2, x3 = X[r, i0], X[r, i1], X[r, i2], X[r, i3]
            w0, w1, w2, w3 = W[i0], W[i1], W[i2], W[i3]
            for j in range(m):
                o[j] += x0 * widen(w0[j]) + x1 * widen(w1[j]) + x2 * widen(w2[j]) + x3 * widen(w3[j])
            g += 4
        for i in nonzero[g:count]:
            x = X[r, i]
            w = W[i]
            for j in range(m):
                o[j] += x * widen(w[j])
    return out


@numba.njit(**JIT)
def nearest_rows(X, C, n, l2):
    """The n rows of C nearest to each row of X, best first: by L2, or by largest inner product.
    For a few queries, on the calling thread (batches go through faiss's BLAS). Rows are read
    in place."""
    nx = X.shape[0]
    out_s, out = new_heaps(nx, n)
    for r in range(nx):
        scores = out_s[r]
        labels = out[r]
        for j in range(C.shape[0]):
            heap_push(scores, labels, row_score(X, r, C, j, l2), j)
        heap_sort(scores, labels)
    return out
