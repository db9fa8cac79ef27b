"""The heaps of `kernels.topk`: a bounded heap's top k, and a heap's pops in order."""

import numba
import numpy as np
import pytest

from annvq.kernels.topk import heap_pop, heap_push, heap_sort, heapify


@numba.njit
def _pop_all(keys, items):
    keys, items = keys.copy(), items.copy()
    n = keys.shape[0]
    heapify(keys, items, n)
    out_k, out_i = np.empty(n, keys.dtype), np.empty(n, items.dtype)
    for t in range(n):
        out_k[t], out_i[t] = heap_pop(keys, items, n - t)
    return out_k, out_i


@numba.njit
def _top(scores, k):
    s, lab = np.full(k, np.inf, np.float32), np.full(k, -1, np.int64)
    for j in range(scores.shape[0]):
        heap_push(s, lab, scores[j], j)
    heap_sort(s, lab)
    return s, lab


@pytest.mark.parametrize("n", [0, 1, 2, 7, 64, 513])
def test_heap_pops_every_pair_by_decreasing_score(n):
    rng = np.random.default_rng(n)
    keys = rng.integers(0, max(n // 3, 1), n).astype(np.float32)  # ties included
    items = np.arange(n, dtype=np.int64) + 100
    out_k, out_i = _pop_all(keys, items)
    np.testing.assert_array_equal(out_k, np.sort(keys)[::-1])
    assert sorted(out_i.tolist()) == items.tolist()
    np.testing.assert_array_equal(keys[out_i - 100], out_k)  # each item kept its key


def test_bounded_heap_keeps_the_k_smallest_in_order():
    scores = np.random.default_rng(3).standard_normal(300).astype(np.float32)
    s, lab = _top(scores, 10)
    np.testing.assert_array_equal(lab, np.argsort(scores, kind="stable")[:10])
    np.testing.assert_array_equal(s, np.sort(scores)[:10])
