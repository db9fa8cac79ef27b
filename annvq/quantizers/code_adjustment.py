"""CAQ, code adjustment quantization (SAQ paper §3, Alg. 1; docs/algorithms.md §6.1-6.2).

A vector o is first rounded onto a per-vector symmetric grid of 2^B cells spanning
[-max|o_i|, max|o_i|], then coordinates are moved one step at a time while that raises
cos(code, o). The codebook is Extended RaBitQ's (Lemma 3.1), so the unbiased estimator
<o, q> ~ ||o||^2 <code, q> / <code, o> applies, at O(rounds * L) cost instead of O(2^B L log L).

Codes are integers c_i in [0, 2^B). With the grid scaled to v = 1, the code vector is
``g_i = 2^(1-B) (c_i + 1/2) - 1`` and the stored ``rescale = ||o||^2 / <g, o>``.
"""

from __future__ import annotations

import numba
import numpy as np

from ..kernels.config import JIT, PARALLEL_JIT

#: Default adjustment rounds (the official caq_adj_rd_lmt; the paper recommends 4 to 8).
ROUNDS = 6
#: A move must raise cos^2 by more than this (relative, as o is normalised first).
EPSILON = 1e-8
#: Coordinates `_next_move` tests at a time.
WINDOW = 32


@numba.njit(**JIT)
def _next_move(u, code, start, m, S, N, SS, delta, v, top):
    """The first of the m coordinates from ``start`` where a step up or down raises cos^2 with
    (S, N) as they are (the test of `caq_row`, SS = S^2 + EPSILON n0), or start + m: one
    branch-free pass that vectorises, where testing each coordinate in turn branches twice."""
    first = m
    for t in range(m):
        i = np.uint64(start + t)  # unsigned: no wraparound check, so the loop vectorises
        c = np.float64(code[i])
        x = delta * (c + 0.5) - v
        up_x, down_x = x + delta, x - delta
        up_s, down_s = S + delta * u[i], S - delta * u[i]
        up = (c < top) & (up_s > 0) & (up_s * up_s * N > SS * (N - x * x + up_x * up_x))
        down = (c > 0) & (down_s > 0) & (down_s * down_s * N > SS * (N - x * x + down_x * down_x))
        first = min(first, t if up | down else m)
    return start + first


@numba.njit(**JIT)
def caq_row(o, bits, rounds, code, book):
    """Encode one vector into ``code`` (uint16); returns (cos(g, o), ||o||, rescale).

    ``book`` receives the incrementally tracked (S, N) = (<g, o>, ||g||^2), before the exact
    recomputation, of the last round run (on o / ||o||, grid before scaling to v = 1).
    """
    L = o.shape[0]
    top = 2 ** bits - 1
    norm = 0.0
    for i in range(L):
        norm += np.float64(o[i]) * o[i]
    norm = np.sqrt(norm)
    if norm == 0.0:
        code[:] = 2 ** (bits - 1)
        book[0] = 0.0
        book[1] = 0.0
        return 0.0, 0.0, 0.0
    u = o.astype(np.float64) / norm
    v = 0.0
    for i in range(L):
        v = max(v, abs(u[i]))
    delta = 2.0 * v / 2 ** bits
    S = 0.0
    N = 0.0
    for i in range(L):
        c = min(int((u[i] + v) / delta), top)
        code[i] = c
        x = delta * (c + 0.5) - v
        S += x * u[i]
        N += x * x
    n0 = N
    book[0] = S
    book[1] = N
    floor = EPSILON * n0
    for _ in range(rounds):
        changed = False
        i = 0
        while i < L:
            # A few coordinates move per round (2-3% at 4 bits), so find the next one a step
            # would improve (`_next_move`, vectorised) and move only there.
            m = min(WINDOW, L - i)
            j = _next_move(u, code, i, m, S, N, S * S + floor, delta, v, top)
            if j == i + m:
                i = j
                continue
            ui = u[j]
            c = np.int64(code[j])
            x = delta * (c + 0.5) - v
            for step in (delta, -delta):
                # Coordinate ascent on cos^2 = S^2 / (N ||u||^2): accept while it strictly rises.
                while 0 <= c + (1 if step > 0 else -1) <= top:
                    x2 = x + step
                    s2 = S + step * ui
                    n2 = N - x * x + x2 * x2
                    if s2 > 0 and s2 * s2 * N > (S * S + floor) * n2:
                        c += 1 if step > 0 else -1
                        x, S, N = x2, s2, n2
                        changed = True
                    else:
                        break
            code[j] = c
            i = j + 1
        book[0] = S
        book[1] = N
        # Exact recomputation each round, so rounding drift never accumulates.
        S = 0.0
        N = 0.0
        for i in range(L):
            x = delta * (code[i] + 0.5) - v
            S += x * u[i]
            N += x * x
        if not changed:
            break
    # <g, o> with g = grid / v and o = norm * u, hence rescale = ||o||^2 / <g, o> = norm * v / S.
    return S / np.sqrt(N), norm, norm * v / S


@numba.njit(**PARALLEL_JIT)
def caq_encode(O, bits, rounds):
    """CAQ codes (n, L) uint16, norms ||o|| (n,) and rescale factors (n,) for every row of O."""
    n, L = O.shape
    codes = np.empty((n, L), np.uint16)
    norms = np.empty(n, np.float32)
    rescale = np.empty(n, np.float32)
    for r in numba.prange(n):
        book = np.empty(2)
        _, norms[r], rescale[r] = caq_row(O[r], bits, rounds, codes[r], book)
    return codes, norms, rescale


def grid_vectors(codes: np.ndarray, bits: int) -> np.ndarray:
    """The code vectors g = 2^(1-B) (c + 1/2) - 1 (float32), the grid scaled to v = 1."""
    return (np.asarray(codes, np.float32) + 0.5) * np.float32(2.0 ** (1 - bits)) - 1


def prefix(codes: np.ndarray, bits: int, b: int) -> np.ndarray:
    """The b leading bits of B-bit codes: itself a valid b-bit CAQ code (progressive prefix)."""
    return np.asarray(codes) >> (bits - b)


def estimate_ip(codes: np.ndarray, bits: int, rescale: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Unbiased estimates of <o_i, q_j> (n, nq): rescale_i * <g_i, q_j> (eq. 13 with v = 1)."""
    return rescale[:, None] * (grid_vectors(codes, bits) @ np.asarray(Q, np.float32).T)


def reconstruct(codes: np.ndarray, bits: int, norms: np.ndarray, rescale: np.ndarray) -> np.ndarray:
    """Least-squares reconstruction of o along g: g * <g, o> / ||g||^2, with <g, o> = ||o||^2 / rescale."""
    g = grid_vectors(codes, bits)
    dot_go = np.divide(norms ** 2, rescale, out=np.zeros_like(norms), where=rescale != 0)
    return g * (dot_go / np.einsum("ij,ij->i", g, g))[:, None]
