"""The multi-stage SAQ/CAQ scan over CSR inverted lists (docs/algorithms.md §7.4-7.5, §8).

Per candidate the running distance starts from cheap lower bounds and is refined segment by
segment; it is dropped as soon as it exceeds the current k-th best (tau):

* stage 0: the variance bound ``max(0, ||o_s||^2 + ||q_s||^2 - 2 m sigma_s(q))`` per segment,
  from the stored norm alone (Chebyshev, eq. 20-21);
* stage 1: the 1-bit estimate from the segment's most significant plane, assuming <g, o> = 0.8
  and adding RaBitQ's margin. The planes are repacked in blocks of 32 vectors and summed by
  FastScan against uint8 tables of the query's 4-dim subset sums, as the official searcher does;
* stage 2: the accurate CAQ estimate, float query against all planes of the code.

Lists are walked block by block as the official ``searchCluster``: a block is skipped once no
lane can still beat tau. Scores are smaller-is-better: the estimated squared L2 distance, or minus
the estimated inner product. For inner product the query is not centred and the exact <q, c> is
added (docs/algorithms.md §9).
"""

import numba
import numpy as np

from .bits import code_dot
from .config import JIT, PARALLEL_JIT
from .driver import WORST, allowed, ivf_topk
from .fastscan import BLOCK, accumulate_block, subset_sum_tables
from .flat import dot
from .topk import heap_push

#: Stage 1 assumes <g, o> = 0.8 for a 1-bit code and adds 2 * 0.58 / 0.8 = 1.45 ||o|| ||q|| / sqrt(L)
#: (RaBitQ's bound with epsilon_0 ~ 1.9), as the official Lut::compFastIP does.
FAST_COS = np.float32(0.8)
FAST_MARGIN = np.float32(1.45)
#: Stands for "no bound" in the stage-0 term m * sigma (kernels compile with fastmath: no inf).
NO_BOUND = np.float32(1e30)


@numba.njit(**JIT)
def segment_sigmas(QW, seg_dim, seg_len, maps, map_offsets, means, m):
    """min(m * sigma_s(q), NO_BOUND) (nq, S) for a few queries on one thread, with
    sigma_s(q)^2 = ||QW_s M_s - m_s||^2, the M_s row-major in ``maps`` from ``map_offsets[s]`` and
    the m_s in ``means`` from ``seg_dim[s]`` (batches go through BLAS instead)."""
    nq = QW.shape[0]
    S = seg_dim.shape[0]
    out = np.empty((nq, S), np.float32)
    y = np.empty(max(seg_len.max(), 1), np.float32)
    for qi in range(nq):
        for s in range(S):
            a, L = seg_dim[s], seg_len[s]
            M = maps[map_offsets[s]:map_offsets[s + 1]]
            m_s = means[a:a + L]
            for j in range(L):
                y[j] = -m_s[j]
            for i in range(L):
                x = QW[qi, a + i]
                row = M[i * L:(i + 1) * L]
                for j in range(L):
                    y[j] += x * row[j]
            sq = np.float32(0.0)
            for j in range(L):
                sq += y[j] * y[j]
            out[qi, s] = min(m * np.sqrt(sq), NO_BOUND)
    return out


@numba.njit(**JIT)
def _accurate(d, row, f, fast, v, qt, qq, qsum, seg_dim, seg_len, seg_bits, seg_byte, l2, scores, prune):
    """Stage 2: swap each segment's cheaper term ``fast[s, v]`` for its CAQ estimate; WORST once
    the running distance passes the k-th best (with ``prune``)."""
    for s in range(seg_dim.shape[0]):
        # <g, q> = Delta <c, q> + (Delta / 2 - 1) sum(q), Delta = 2^(1-B)  (eq. 13, v = 1)
        delta = np.float32(2.0 ** (1 - seg_bits[s]))
        cq = code_dot(row, seg_byte[s], seg_len[s] // 8, seg_bits[s], qt, seg_dim[s])
        est = f[2 * s + 1] * (delta * cq + (delta / 2 - 1) * qsum[s])
        d += (f[2 * s] * f[2 * s] + qq[s] - 2 * est if l2 else -est) - fast[s, v]
        if prune and d > scores[0]:
            return WORST
    return d


@numba.njit(**JIT)
def _saq_begin(data, qi):
    """Per-query scratch: the query residual, its FastScan tables and per-segment terms, and the
    32-lane buffers of a block."""
    QW, CW, msig, offsets, block_offsets, packed, lane_norms, codes, factors, seg_dim, seg_len, seg_bits, \
        seg_byte, tail_dim, l2, prune = data
    D = QW.shape[1]
    S = seg_dim.shape[0]
    qt = np.empty(D, np.float32)
    qtable = np.empty((max(tail_dim // 4, 1), 16), np.uint8)
    seg = np.empty((7, S), np.float32)  # rows: qq, qsum, bias, step, scale, offset, vbias
    vbsuf = np.zeros((S + 1, BLOCK), np.float32)  # row s: sum of the variance bounds of s.. S-1
    fast = np.zeros((S, BLOCK), np.float32)
    return qt, qtable, seg, vbsuf, fast, np.empty(BLOCK, np.float32), np.zeros(BLOCK, np.bool_), \
        np.empty(BLOCK, np.int32), np.empty(2, np.float32)


@numba.njit(**JIT)
def _saq_list(data, scratch, qi, p, lst, scores, labels, live):
    """Stages 0-2 over the blocks of one list (see the module docstring)."""
    QW, CW, msig, offsets, block_offsets, packed, lane_norms, codes, factors, seg_dim, seg_len, seg_bits, \
        seg_byte, tail_dim, l2, prune = data
    qt, qtable, seg, vbsuf, fast, dcur, alive, acc, sums = scratch
    qq, qsum, bias, step, scale, offset, vbias = seg[0], seg[1], seg[2], seg[3], seg[4], seg[5], seg[6]
    D = QW.shape[1]
    S = seg_dim.shape[0]
    has_tail = l2 and tail_dim < D
    masked = live.shape[0] > 0
    zero = np.float32(0.0)
    # Per list: the query residual (L2) or the raw query (IP), its norms and tables.
    if l2:
        for i in range(D):
            qt[i] = QW[qi, i] - CW[lst, i]
        base = zero
        tail = qt[tail_dim:]  # zero-based: see fastscan.subset_sum_tables
        for i in range(tail.shape[0]):
            base += tail[i] * tail[i]
    else:
        qt[:] = QW[qi]
        base = -dot(QW[qi], CW[lst])
    if l2 or p == 0:  # the inner-product query does not depend on the list
        for s in range(S):
            bias[s], step[s] = subset_sum_tables(qt, seg_dim[s], seg_len[s], qtable, sums)
            sm, sq = sums[0], sums[1]
            qsum[s], qq[s] = sm, sq
            if prune:
                # the 1-bit estimate is ||o|| (scale * acc + offset): <o, q> ~ ||o|| (2t - sum q)
                # / (0.8 sqrt(L)) + 1.45 ||o|| ||q|| / sqrt(L) with t = bias + step * acc
                r = np.float32(1.0 / np.sqrt(seg_len[s]))
                scale[s] = r * 2 * step[s] / FAST_COS
                offset[s] = r * ((2 * bias[s] - sm) / FAST_COS + FAST_MARGIN * np.sqrt(sq))
                vbias[s] = sq - 2 * msig[qi, s] if l2 else -msig[qi, s]
    first = offsets[lst]
    end = offsets[lst + 1]
    if not prune:
        for j in range(first, end):
            if allowed(live, j):
                d = base + (factors[j, 2 * S] * factors[j, 2 * S] if has_tail else zero)
                d = _accurate(d, codes[j], factors[j], fast, 0, qt, qq, qsum, seg_dim, seg_len, seg_bits,
                              seg_byte, l2, scores, False)
                heap_push(scores, labels, d, j)
        return
    for b in range(block_offsets[lst], block_offsets[lst + 1]):
        start = first + (b - block_offsets[lst]) * BLOCK
        nv = min(BLOCK, end - start)
        tau = scores[0]
        # Stage 0: variance bounds, summed from the last segment backwards; every loop over
        # the 32 lanes is branch-free so that it vectorizes.
        for v in range(BLOCK):
            dcur[v] = base + (lane_norms[b, S, v] * lane_norms[b, S, v] if has_tail else zero)
        for s in range(S - 1, -1, -1):
            for v in range(BLOCK):
                vb = max(zero, lane_norms[b, s, v] * lane_norms[b, s, v] + vbias[s]) if l2 else vbias[s]
                vbsuf[s, v] = vbsuf[s + 1, v] + vb
        for v in range(BLOCK):
            alive[v] = (v < nv) & (dcur[v] + vbsuf[0, v] <= tau)
        if masked:  # rows outside the bitset (deleted, filtered out) go no further
            for v in range(nv):
                alive[v] = alive[v] & allowed(live, start + v)
        live_lanes = 0
        for v in range(BLOCK):
            live_lanes += alive[v]
        # Stage 1: segment by segment, swap the variance bound for the 1-bit estimate.
        for s in range(S):
            if live_lanes == 0:
                break
            acc[:] = 0
            accumulate_block(qtable, packed, b, seg_dim[s] // 8, (seg_dim[s] + seg_len[s]) // 8, acc)
            for v in range(BLOCK):
                est = lane_norms[b, s, v] * (scale[s] * np.float32(acc[v]) + offset[s])
                fs = max(zero, lane_norms[b, s, v] * lane_norms[b, s, v] + qq[s] - 2 * est) if l2 else -est
                fast[s, v] = fs
                dcur[v] += fs
            live_lanes = 0
            for v in range(BLOCK):
                alive[v] = alive[v] & (dcur[v] + vbsuf[s + 1, v] <= tau)
                live_lanes += alive[v]
        # Stage 2: the accurate estimate replaces the 1-bit one, segment by segment.
        if live_lanes:
            for v in range(nv):
                if alive[v]:
                    j = start + v
                    d = _accurate(dcur[v], codes[j], factors[j], fast, v, qt, qq, qsum, seg_dim, seg_len,
                                  seg_bits, seg_byte, l2, scores, True)
                    heap_push(scores, labels, d, j)


@numba.njit(**PARALLEL_JIT)
def saq_scan(QW, CW, msig, probes, offsets, block_offsets, packed, lane_norms, codes, factors, seg_dim,
             seg_len, seg_bits, seg_byte, tail_dim, l2, prune, live, k):
    """Top-k (scores, positions) of every query over its probed lists: one call per batch.

    QW (nq, D) and CW (nlist, D) are queries and centroids in the codec's rotated space;
    msig (nq, S) holds m * sigma_s(q) per non-zero segment; codes (n, bytes) uint8 rows of bit
    planes, segment s from byte seg_byte[s]; factors (n, 2S [+1]) = (||o_s||, rescale_s)..., then
    the 0-bit tail's norm when tail_dim < D. Per FastScan block: packed (blocks, tail_dim/8, 32)
    holds the most significant planes (byte column c covers dimensions 8c..8c+7) and lane_norms
    (blocks, S + 1, 32) the ||o_s|| and tail norm lane by lane. ``prune`` False scores every
    candidate exactly (stage 2 only). ``live``: the rows that may be returned (driver.py).
    """
    data = (QW, CW, msig, offsets, block_offsets, packed, lane_norms, codes, factors, seg_dim, seg_len,
            seg_bits, seg_byte, tail_dim, l2, prune)
    return ivf_topk(_saq_begin, _saq_list, data, probes, live, k)
