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
