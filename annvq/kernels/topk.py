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
