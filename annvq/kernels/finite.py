"""Checks and normalisation cheap enough to run on every query: numpy's ``isfinite(X).all()``
builds a boolean temporary, and its row norms take five calls, microseconds each for one vector.

Each kernel here says ``fastmath=False`` outright: a function that leaves it unset is compiled
with its caller's flags, and a fastmath caller's compile (`scan.saq_answer_one`) is the one every
later call reused, where NaN passed the check (numba 0.68, found by a NaN query)."""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, fastmath=False)  # fastmath would assume every value finite
def all_finite(X):
    """Whether no element of the 2-D array X is NaN or +-Inf. A row at a time: without a branch
    per element the loop vectorises (fashion-mnist's 60000 x 784: 16.5 ms to 6.5)."""
    for i in range(X.shape[0]):
        ok = True
        for j in range(X.shape[1]):
            ok &= np.isfinite(X[i, j])
        if not ok:
            return False
    return True


@numba.njit(cache=True, nogil=True, fastmath=False)  # the additions stay in numpy's order
def _block_sum(a, lo, n):
    """numpy's float32 sum of a[lo:lo + n] for n <= 128: eight running sums when n >= 8."""
    if n < 8:
        total = np.float32(-0.0)
        for i in range(lo, lo + n):
            total += a[i]
        return total
    r0, r1, r2, r3, r4, r5, r6, r7 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3], a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    for i in range(lo + 8, lo + n - n % 8, 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(lo + n - n % 8, lo + n):
        total += a[i]
    return total


@numba.njit(cache=True, nogil=True, fastmath=False)
def _pairwise_sum(a):
    """numpy's float32 pairwise summation of a (``add.reduce``), so the result is numpy's to the
    bit: blocks of at most 128 (`_block_sum`), halves (rounded to eights) summed above that. The
    halving runs on an explicit stack: numba's cache fails on recursive functions."""
    nodes = np.empty((64, 3), np.int64)  # (first, length, halves summed): depth 2 log2(n / 128)
    sums = np.empty(64, np.float32)
    nodes[0] = 0, a.shape[0], 0
    top, done = 1, 0
    while top:
        top -= 1
        lo, n, joined = nodes[top]
        if n <= 128:
            sums[done] = _block_sum(a, lo, n)
            done += 1
        elif joined:
            done -= 1
            sums[done - 1] += sums[done]
        else:
            half = n // 2 - (n // 2) % 8
            nodes[top] = lo, n, 1
            nodes[top + 1] = lo + half, n - half, 0
            nodes[top + 2] = lo, half, 0
            top += 3
    return sums[0]


@numba.njit(cache=True, nogil=True, fastmath=False)
def unit_rows(X):
    """(X's rows divided by their norms, the first zero row or -1) for a float32 (n, d) X: the
    arithmetic of ``X / np.linalg.norm(X, axis=1, keepdims=True)`` to the bit, in one call."""
    out = np.empty(X.shape, np.float32)
    squares = np.empty(X.shape[1], np.float32)
    for r in range(X.shape[0]):
        for j in range(X.shape[1]):
            squares[j] = X[r, j] * X[r, j]
        norm = np.sqrt(np.float32(0.0) + _pairwise_sum(squares))
        if norm == 0:
            return out, r
        for j in range(X.shape[1]):
            out[r, j] = X[r, j] / norm
    return out, -1


@numba.njit(cache=True, nogil=True, fastmath=False)
def query_rows(Q, unit):
    """(the rows a kernel searches, -1), or (Q, the first bad row): Q itself when every value is
    finite, its `unit_rows` for cosine (``unit``), where a zero row is bad too. Every input
    check (`validation.as_vectors`), and a single query's inside a one-call search
    (`scan.saq_answer_one`, `flat.flat_answer_one`)."""
    if not all_finite(Q):
        for r in range(Q.shape[0]):
            for j in range(Q.shape[1]):
                if not np.isfinite(Q[r, j]):
                    return Q, r
    if unit:
        return unit_rows(Q)
    return Q, -1
