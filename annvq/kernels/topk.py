"""Max-heaps inside numba loops: bounded ones for top-k selection (smaller score is better), and
one popped in order."""

import numba
import numpy as np

from .config import JIT


@numba.njit(**JIT, inline="always")
def _sift_down(scores, labels, n, pos, score, label):
    r"""Put (score, label) in slot pos of a max-heap of n pairs, moving larger children up: O(\log n)."""
    while True:
        left = 2 * pos + 1
        if left >= n:
            break
        child = left
        if left + 1 < n and scores[left + 1] > scores[left]:
            child = left + 1
        if scores[child] <= score:
            break
        scores[pos] = scores[child]
        labels[pos] = labels[child]
        pos = child
    scores[pos] = score
    labels[pos] = label


@numba.njit(**JIT)
def heap_replace_top(scores, labels, score, label):
    r"""Replace the heap's largest element by (score, label) and sift down: O(\log k)."""
    _sift_down(scores, labels, scores.shape[0], 0, score, label)


@numba.njit(**JIT)
def heap_push(scores, labels, score, label):
    """Keep (score, label) if it beats the current worst of the k kept."""
    if score < scores[0]:
        heap_replace_top(scores, labels, score, label)


@numba.njit(**JIT)
def heap_sort(scores, labels):
    """Sort a heap's contents ascending in place; empty slots (inf, -1) end last."""
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    lab = labels[order]
    scores[:] = s
    labels[:] = lab


@numba.njit(**JIT)
def heapify(scores, labels, n):
    """Arrange the first n (score, label) pairs as a max-heap in place: O(n)."""
    for pos in range(n // 2 - 1, -1, -1):
        _sift_down(scores, labels, n, pos, scores[pos], labels[pos])


@numba.njit(**JIT)
def heap_pop(scores, labels, n):
    r"""(score, label) of the largest score of a max-heap of n > 0 pairs, which then holds the
    other n - 1 in its first n - 1 slots: O(\log n). Popping in turn visits pairs by decreasing
    score without sorting those never reached."""
    score, label = scores[0], labels[0]
    _sift_down(scores, labels, n - 1, 0, scores[n - 1], labels[n - 1])
    return score, label


@numba.njit(**JIT)
def merge_sorted(scores, rows, ids, starts, k):
    """The k best of several sorted top-k lists laid side by side: columns starts[p]:starts[p + 1]
    of scores, rows and ids (nq, m) hold part p's hits, ascending, padded with row -1. Returns
    (scores, rows, ids, part) (nq, k): a k-way merge that takes the earlier part on ties, as a
    stable sort of the columns would, and pads with (WORST, -1, -1, -1)."""
    nq, P = scores.shape[0], starts.shape[0] - 1
    out_s = np.full((nq, k), np.finfo(np.float32).max, np.float32)
    out_r, out_i, out_p = np.full((nq, k), -1, np.int64), np.full((nq, k), -1, np.int64), np.full((nq, k), -1, np.int64)
    head = np.empty(P, np.int64)
    for qi in range(nq):
        head[:] = starts[:-1]
        for t in range(k):
            best = -1
            for p in range(P):
                c = head[p]
                if c < starts[p + 1] and rows[qi, c] >= 0 and (best < 0 or scores[qi, c] < scores[qi, head[best]]):
                    best = p
            if best < 0:
                break
            c = head[best]
            out_s[qi, t], out_r[qi, t], out_i[qi, t], out_p[qi, t] = scores[qi, c], rows[qi, c], ids[qi, c], best
            head[best] = c + 1
    return out_s, out_r, out_i, out_p
