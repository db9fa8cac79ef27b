"""The heaps of `kernels.topk`: a bounded heap's top k, and a heap's pops in order."""

import numba
import numpy as np
import pytest

from annvq.kernels.driver import WORST
from annvq.kernels.topk import heap_pop, heap_push, heap_sort, heapify, merge_sorted


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


@pytest.mark.parametrize("widths,k", [([10, 10], 10), ([5, 0, 12, 3], 8), ([4], 6), ([3, 3, 3], 20)])
def test_merge_sorted_equals_a_stable_sort_of_the_parts_side_by_side(widths, k):
    """The k-way merge against the oracle it replaces: a stable argsort of the concatenated
    columns, padding (row -1, score WORST) last; ties (integer scores) go to the earlier part."""
    rng = np.random.default_rng(len(widths) * 100 + k)
    nq = 40
    parts = []
    for w in widths:
        s = np.sort(rng.integers(0, 6, (nq, w)).astype(np.float32), axis=1)
        r = rng.integers(0, 1000, (nq, w))
        filled = rng.integers(0, w + 1, nq)  # each query's hits in this part, then padding
        pad = np.arange(w) >= filled[:, None]
        s[pad], r[pad] = WORST, -1
        parts.append((s, r, np.where(r < 0, -1, r + 10_000 * len(parts))))
    scores, rows, ids = (np.concatenate([p[i] for p in parts], axis=1) for i in range(3))
    part = np.concatenate([np.full((nq, w), i) for i, w in enumerate(widths)], axis=1)
    out = merge_sorted(scores, rows, ids, np.cumsum([0] + widths), k)
    order = np.argsort(np.where(rows < 0, np.inf, scores), axis=1, kind="stable")[:, :k]
    want = [np.take_along_axis(a, order, 1) for a in (scores, rows, ids, part)]
    m = order.shape[1]
    none = want[1] < 0
    want[3][none] = -1
    for got, expected in zip(out, want):
        np.testing.assert_array_equal(got[:, :m], expected)
    assert (out[1][:, m:] == -1).all() and (out[3][:, m:] == -1).all() and (out[0][:, m:] == WORST).all()
