"""Bounded max-heaps for top-k selection inside numba loops (smaller score is better)."""

import numba
import numpy as np

from .config import JIT


@numba.njit(**JIT)
def heap_replace_top(scores, labels, score, label):
    r"""Replace the heap's largest element by (score, label) and sift down: O(\log k)."""
    k = scores.shape[0]
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= k:
            break
        child = left
        if left + 1 < k and scores[left + 1] > scores[left]:
            child = left + 1
        if scores[child] <= score:
            break
        scores[pos] = scores[child]
        labels[pos] = labels[child]
        pos = child
    scores[pos] = score
    labels[pos] = label


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
def _sift_down_min(keys, items, n, pos):
    """Move (keys[pos], items[pos]) down a min-heap of n pairs until no child is smaller."""
    key, item = keys[pos], items[pos]
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and keys[child + 1] < keys[child]:
            child += 1
        if keys[child] >= key:
            break
        keys[pos] = keys[child]
        items[pos] = items[child]
        pos = child
    keys[pos] = key
    items[pos] = item


@numba.njit(**JIT)
def min_heapify(keys, items, n):
    """Arrange the first n (key, item) pairs as a min-heap in place: O(n)."""
    for pos in range(n // 2 - 1, -1, -1):
        _sift_down_min(keys, items, n, pos)


@numba.njit(**JIT)
def min_heap_pop(keys, items, n):
    r"""(key, item) of the smallest key of a min-heap of n > 0 pairs, which then holds the other
    n - 1 in its first n - 1 slots: O(\log n). Popping in turn visits pairs by increasing key
    without sorting those never reached."""
    key, item = keys[0], items[0]
    keys[0], items[0] = keys[n - 1], items[n - 1]
    _sift_down_min(keys, items, n - 1, 0)
    return key, item
