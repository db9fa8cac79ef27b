"""The one loop every IVF scan runs: queries x probed lists x rows into a bounded heap.

A codec supplies two njit functions and a tuple of its arrays (``data``):

* ``begin(data, qi)`` returns the per-query scratch (tables, buffers) as a tuple;
* ``scan_list(data, scratch, qi, p, lst, scores, labels, live)`` scores the rows of list ``lst``
  (the query's ``p``-th probe) and offers each allowed row to the heap with `push`.

`ivf_topk` is inlined into the codec's own ``parallel=True`` kernel, so numba compiles one
monomorphic, cacheable kernel per codec (a function passed as a value through a parallel loop
would not be cacheable). Single queries run the same kernel, except SAQ's, Flat's and PQ
FastScan's: their scans of one query cost little enough that the parallel launch shows
(`scan.saq_scan_one`, `flat.ivf_flat_scan_one`, `lut.pq4_fastscan_one`). For PQ8 and LVQ a
serial twin gained nothing (docs/benchmarks.md, "A faster machine").

``live`` is a row bitset (bit j of byte j >> 3, little-endian, as ``np.packbits(mask,
bitorder="little")``) of the rows that may be returned; empty = every row. Deleted rows
(tombstones) and, later, rows failing a filter never enter the heap.
"""

import itertools

import numba
import numpy as np

from .config import JIT
from .topk import heap_push, heap_sort, merge_sorted

#: Score of an empty heap slot. Finite: kernels compile with fastmath, which assumes no inf.
WORST = np.float32(np.finfo(np.float32).max)
#: An empty bitset: every row may be returned.
ALL_ROWS = np.zeros(0, np.uint8)


@numba.njit(**JIT, inline="always")
def allowed(live, j):
    """Whether row j may be returned (bit j of the ``live`` bitset, or no bitset at all)."""
    return live.shape[0] == 0 or (live[j >> 3] >> (j & 7)) & 1 == 1


@numba.njit(**JIT, inline="always")
def push(scores, labels, score, j, live):
    """Offer row j to the heap when the row bitset allows it."""
    if allowed(live, j):
        heap_push(scores, labels, score, j)


@numba.njit(**JIT, inline="always")
def new_heaps(nq, k):
    """(scores, labels) of nq empty heaps of size k: WORST and -1."""
    return np.full((nq, k), WORST, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)


@numba.njit(**JIT, inline="always")
def ivf_topk(begin, scan_list, data, probes, live, k):
    """(scores (nq, k) ascending, rows (nq, k); -1 where none) over every query's probed lists."""
    nq = probes.shape[0]
    out_s, out_l = new_heaps(nq, k)
    for qi in numba.prange(nq):
        scores = out_s[qi]
        labels = out_l[qi]
        scratch = begin(data, qi)
        for p in range(probes.shape[1]):
            lst = probes[qi, p]
            if lst >= 0:
                scan_list(data, scratch, qi, p, lst, scores, labels, live)
        heap_sort(scores, labels)
    return out_s, out_l


@numba.njit(cache=True, nogil=True, fastmath=False)  # it writes infinities
def reported(scores, rows, l2):
    """Reported distances from raw scores: sqrt for L2, negation for inner product; +inf / -inf
    where the row is -1 (no result). One call, no temporaries: it runs on every search."""
    out = np.empty(scores.shape, np.float32)
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            if rows[i, j] < 0:
                out[i, j] = np.inf if l2 else -np.inf
            elif l2:
                out[i, j] = np.sqrt(max(scores[i, j], np.float32(0.0)))
            else:
                out[i, j] = -scores[i, j]
    return out


@numba.njit(**JIT)
def unit_l2_as_ip(scores, rows):
    """Squared L2 scores between unit vectors as -<q, x> = ||q - x||^2 / 2 - 1, in place, where
    the row is not -1: a cosine scan that estimates distances, merged with ones that score -IP.
    One call: numpy's ``where`` and its temporaries took 5.7 us of a single query."""
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            if rows[i, j] >= 0:
                scores[i, j] = scores[i, j] * np.float32(0.5) - np.float32(1.0)


@numba.njit(**JIT)
def row_ids(rows, ids):
    """The id of every row position, -1 where the position is -1."""
    out = np.full(rows.shape, -1, np.int64)
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            if rows[i, j] >= 0:
                out[i, j] = ids[rows[i, j]]
    return out


@numba.njit(cache=True, nogil=True, fastmath=False)  # it writes infinities, through `reported`
def answers(scores, rows, ids, l2):
    """(`reported` distances, `row_ids`) in one call, what a search of one part returns: called
    apart from Python they took a single query about 2.5 us each, mostly the call itself."""
    return reported(scores, rows, l2), row_ids(rows, ids)


def merged_answers(found, ids, k, l2):
    """(`reported` distances, ids, rows, part) (nq, k) of the best k across parts: ``found`` holds
    each part's (raw scores, rows) ascending, ``ids`` its id per row position. Ids are looked up
    part by part (`row_ids`), then one k-way merge (`topk.merge_sorted`): a single query over two
    segments merged in 14 us, against 31-44 with argsort and take_along_axis."""
    starts = np.array(list(itertools.accumulate((r.shape[1] for _, r in found), initial=0)))
    scores, rows, out_ids, part = merge_sorted(
        np.concatenate([s for s, _ in found], axis=1), np.concatenate([r for _, r in found], axis=1),
        np.concatenate([row_ids(r, i) for (_, r), i in zip(found, ids)], axis=1), starts, k)
    return reported(scores, rows, l2), out_ids, rows, part


def row_bitset(keep: np.ndarray) -> np.ndarray:
    """The bitset of a boolean row mask, as the scans read it."""
    return np.packbits(keep, bitorder="little")
