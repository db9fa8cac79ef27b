"""Exact nearest centroids in a PCA basis, where the leading dimensions hold most of a distance.

Two passes per query. The first sums the squared differences over the ``LEAD`` leading dimensions
of every centroid, across centroids (a transposed copy of those columns, so the loop runs 8
centroids per AVX2 step). The exact distances of the n best of these partial sums seed tau, the
n-th best distance; the second pass reads further only into the centroids whose partial sum is
below tau, and drops each once its running sum passes tau. Partial sums only grow, so no centroid
is dropped that could be among the n nearest. On fashion-mnist's 1024 centroids about one in six
gets past the first pass. With ``keep`` (a bool per centroid: the lists a filter leaves rows in)
only kept centroids are candidates, so a filtered probe reads no more than an unfiltered one.

A single query whose rotation nothing else needs (a filtered scan over the raw vectors) rotates
only its LEAD leading dimensions for the first pass, and computes the exact distances over the
raw rows instead (`nearest_centroids_raw`): its partial sums grow more slowly there, but a few
hundred rows cost less than rotating every dimension.

Inner product ranks like L2 with a start: argmax <x, c> = argmin ||x - c||^2 - ||c||^2, since ||x||^2
is the same for every centroid; the partial sums start at -||c||^2 and still only grow, so the same
pruning is exact (`probe_operands`).
"""

import numba
import numpy as np

from .config import JIT, PARALLEL_JIT
from .driver import WORST
from .flat import small_matmul
from .topk import heap_push, heap_sort

#: Dimensions of the first, exhaustive pass; also the step at which the second checks tau.
LEAD = 64
#: When more than one centroid in FLAT is left after the first pass, the second computes their
#: exact sums without checking tau (`_exact_fours`): on a flat spectrum few would be dropped.
FLAT = 4


def probe_operands(C: np.ndarray, l2: bool) -> tuple[np.ndarray, np.ndarray]:
    """What the first pass reads besides the query: C's LEAD leading columns, transposed (LEAD, n)
    and C-contiguous, and each row's starting sum, 0 for L2 and -||c||^2 for inner product."""
    start = np.zeros(len(C), np.float32) if l2 else -np.einsum("ij,ij->i", C, C).astype(np.float32)
    return np.ascontiguousarray(C[:, :LEAD].T), start


@numba.njit(**JIT)
def _exact_fours(X, r, C, base, first, rows, scores, out):
    """Push the full sums of ``rows`` (a multiple of four) for row r of X into the heap: base[j]
    plus the squared differences over dimensions from ``first``, four centroids per pass over X,
    whose loads they share (a pydocs-256-angular query's whole probe over 256 centroids took
    18.7-23.5 us against 24.8-29.1 with the checked sums, one centroid at a time)."""
    D = X.shape[1]
    for g in range(0, rows.shape[0], 4):
        j0, j1, j2, j3 = rows[g], rows[g + 1], rows[g + 2], rows[g + 3]
        s0, s1, s2, s3 = base[j0], base[j1], base[j2], base[j3]
        for t in range(D - first):
            i = np.uint64(first + t)
            x = X[r, i]
            d0, d1, d2, d3 = x - C[j0, i], x - C[j1, i], x - C[j2, i], x - C[j3, i]
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
        heap_push(scores, out, s0, j0)
        heap_push(scores, out, s1, j1)
        heap_push(scores, out, s2, j2)
        heap_push(scores, out, s3, j3)


@numba.njit(**JIT, inline="always")
def _nearest(XL, X, r, C, lead, start, n, keep, same, out):
    """The n rows of C nearest to row r of X, best first, into ``out``; only rows where ``keep``
    holds when it is not empty, -1 where fewer are kept (the module docstring). The first pass
    reads row r of XL; ``same``: XL is X and C is the rotated centroids, whose exact sums go on
    from the first pass's, else X and C are raw and the exact sums start again from ``start``."""
    nc, D = C.shape[0], X.shape[1]
    first = LEAD if same else 0
    part = start.copy()
    for i in range(0, LEAD, 4):  # four dimensions per sweep: a quarter of the loads and stores of part
        x0, x1, x2, x3 = XL[r, i], XL[r, i + 1], XL[r, i + 2], XL[r, i + 3]
        for j in range(nc):
            d0, d1, d2, d3 = x0 - lead[i, j], x1 - lead[i + 1, j], x2 - lead[i + 2, j], x3 - lead[i + 3, j]
            part[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
    if keep.shape[0]:
        for j in range(nc):
            part[j] = part[j] if keep[j] else WORST
    seed_s = np.full(n, WORST, np.float32)
    seed = np.full(n, -1, np.int64)
    for j in range(nc):
        heap_push(seed_s, seed, part[j], j)
    scores = np.full(n, WORST, np.float32)
    done = np.zeros(nc, np.bool_)
    for t in range(n):
        j = seed[t]
        if j < 0:  # fewer kept rows than n
            continue
        s = part[j] if same else start[j]
        for i in range(D - first):
            at = np.uint64(first + i)  # unsigned index: no wraparound check, so the loop vectorises
            d = X[r, at] - C[j, at]
            s += d * d
        heap_push(scores, out, s, j)
        done[j] = True
    left = np.empty(nc, np.int64)  # the centroids the first pass did not rule out
    m = 0
    for j in range(nc):
        if not done[j] and part[j] < scores[0]:
            left[m] = j
            m += 1
    if m * FLAT > nc:  # a flat spectrum: checking tau would drop few; exact sums four rows at a time
        _exact_fours(X, r, C, part if same else start, first, left[:m - m % 4], scores, out)
        left = left[m - m % 4:m]
        m = left.shape[0]
    for j in left[:m]:
        s = part[j] if same else start[j]
        for a in range(first, D, LEAD):
            if s >= scores[0]:
                break
            for t in range(min(LEAD, D - a)):
                i = np.uint64(a + t)
                d = X[r, i] - C[j, i]
                s += d * d
        heap_push(scores, out, s, j)
    heap_sort(scores, out)


@numba.njit(**JIT)
def nearest_centroids(X, C, lead, start, n, keep):
    """The n rows of C (nc, D) nearest to each row of X (nq, D), best first, on this thread (a few
    queries): in L2, or by inner product, as `probe_operands` (C) = (lead, start) say; D a
    multiple of LEAD; only rows where ``keep`` holds unless it is empty, -1 after the last kept one."""
    out = np.full((X.shape[0], n), -1, np.int64)
    for r in range(X.shape[0]):
        _nearest(X, X, r, C, lead, start, n, keep, True, out[r])
    return out


@numba.njit(**JIT)
def nearest_centroids_raw(X, W, C, lead, start, n, keep):
    """`nearest_centroids` of raw rows X (nq, dim) among raw centroids C (nc, dim), from the
    first LEAD columns of the rotation W (float16 bits, as `flat.small_matmul` reads them): the
    first pass against ``lead`` of the rotated centroids, the exact distances over the raw rows,
    from ``start`` = `probe_operands` (C)[1]. One fashion-mnist query, 16 lists: 16-20 us, against
    14 us for its whole rotation and 12-14 for the probe in the rotated basis."""
    XL = small_matmul(X, W)
    out = np.full((X.shape[0], n), -1, np.int64)
    for r in range(X.shape[0]):
        _nearest(XL, X, r, C, lead, start, n, keep, False, out[r])
    return out


@numba.njit(**PARALLEL_JIT)
def nearest_centroids_batch(X, C, lead, start, n, keep):
    """`nearest_centroids` for a batch, queries spread over numba's threads."""
    out = np.full((X.shape[0], n), -1, np.int64)
    for r in numba.prange(X.shape[0]):
        _nearest(X, X, r, C, lead, start, n, keep, True, out[r])
    return out


@numba.njit(**PARALLEL_JIT)
def nearest_residuals(R, C, lead, start, tail):
    """Encoding's assignment in L2: each row of R (rows in the basis of C) gets its nearest row of
    C, is replaced in place by its residual to it, and the squared norm of that residual from
    column ``tail`` on (the part left uncoded) comes back with the lists. One pass over each row
    while it is in cache, where gathering the centroids and subtracting would copy the batch."""
    n, D = R.shape
    lists = np.empty(n, np.int64)
    tails = np.empty(n)
    every = np.zeros(0, np.bool_)
    for r in numba.prange(n):
        best = np.full(1, -1, np.int64)
        _nearest(R, R, r, C, lead, start, 1, every, True, best)
        j = best[0]
        lists[r] = j
        s = 0.0
        for i in range(D):
            R[r, i] -= C[j, i]
        for i in range(tail, D):
            s += np.float64(R[r, i]) * R[r, i]
        tails[r] = s
    return lists, tails
