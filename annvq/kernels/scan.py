"""The multi-stage SAQ/CAQ scan over CSR inverted lists (quantizers.md §2.6-2.7, §6.2).

Per candidate the running distance starts from cheap lower bounds and is refined segment by
segment; it is dropped as soon as it exceeds the current k-th best (tau):

* stage 0: the variance bound ``max(0, ||o_s||^2 + ||q_s||^2 - 2 m sigma_s(q))`` per segment,
  from the stored norm alone (Chebyshev, eq. 20-21);
* stage 1: the 1-bit estimate from the segment's most significant plane, by popcount against the
  query quantized to ``QUERY_BITS`` planes, assuming <g, o> = 0.8 and adding RaBitQ's margin;
* stage 2: the accurate CAQ estimate, float query against all planes of the code.

Scores are smaller-is-better: the estimated squared L2 distance, or minus the estimated inner
product. For inner product the query is not centred and the exact <q, c> is added (§0).
"""

import numba
import numpy as np

from .bits import code_dot, plane_dot, quantize_query
from .config import PARALLEL_JIT
from .flat import dot
from .topk import heap_push, heap_sort

#: Bits of the quantized query in stage 1, as original RaBitQ (B_q = 4): the 1-bit estimate is a
#: margin-padded bound, and 8 bits measured no recall gain on fashion-mnist at 30% more scan time.
QUERY_BITS = 4
#: Stage 1 assumes <g, o> = 0.8 for a 1-bit code and adds 2 * 0.58 / 0.8 = 1.45 ||o|| ||q|| / sqrt(L)
#: (RaBitQ's bound with epsilon_0 ~ 1.9), as the official Lut::compFastIP does.
FAST_COS = np.float32(0.8)
FAST_MARGIN = np.float32(1.45)
#: The worst score, used for empty heap slots (finite, since kernels compile with fastmath).
WORST = np.float32(np.finfo(np.float32).max)


@numba.njit(**PARALLEL_JIT)
def saq_scan(QW, CW, msig, probes, offsets, codes, factors, seg_dim, seg_len, seg_bits, seg_word,
             tail_dim, l2, prune, k):
    """Top-k (scores, positions) of every query over its probed lists: one call per batch.

    QW (nq, D) and CW (nlist, D) are queries and centroids in the codec's rotated space;
    msig (nq, S) holds m * sigma_s(q) per non-zero segment; codes (n, words) uint64 bit planes;
    factors (n, 2S [+1]) = (||o_s||, rescale_s)..., then the 0-bit tail's norm when tail_dim < D.
    ``prune`` False scores every candidate exactly (stage 2 only).
    """
    nq, D = QW.shape
    S = seg_dim.shape[0]
    max_words = 1
    for s in range(S):
        max_words = max(max_words, seg_len[s] // 64)
    out_s = np.full((nq, k), WORST, dtype=np.float32)
    out_l = np.full((nq, k), -1, dtype=np.int64)
    for qi in numba.prange(nq):
        scores = out_s[qi]
        labels = out_l[qi]
        qt = np.empty(D, np.float32)
        qplanes = np.zeros((max(S, 1), QUERY_BITS, max_words), np.uint64)
        qq = np.empty(S, np.float32)
        qsum = np.empty(S, np.float32)
        lo = np.empty(S, np.float32)
        step = np.empty(S, np.float32)
        margin = np.empty(S, np.float32)
        vb = np.empty(S, np.float32)
        vbsuf = np.zeros(S + 1, np.float32)
        fast = np.zeros(S, np.float32)
        digits = np.empty(64, np.float32)
        lanes = np.empty(64, np.float32)
        rsqrt_len = np.empty(S, np.float32)
        for s in range(S):
            rsqrt_len[s] = np.float32(1.0 / np.sqrt(seg_len[s]))
        for p in range(probes.shape[1]):
            lst = probes[qi, p]
            if lst < 0:
                continue
            # Per list: the query residual (L2) or the raw query (IP), its norms and planes.
            if l2:
                for i in range(D):
                    qt[i] = QW[qi, i] - CW[lst, i]
                base = np.float32(0.0)
                for i in range(tail_dim, D):
                    base += qt[i] * qt[i]
            else:
                qt[:] = QW[qi]
                base = -dot(QW[qi], CW[lst])
            for s in range(S):
                a = seg_dim[s]
                sq = np.float32(0.0)
                sm = np.float32(0.0)
                for i in range(a, a + seg_len[s]):
                    sq += qt[i] * qt[i]
                    sm += qt[i]
                qq[s] = sq
                qsum[s] = sm
                lo[s], step[s] = quantize_query(qt, a, seg_len[s], QUERY_BITS, qplanes[s])
                margin[s] = FAST_MARGIN * np.sqrt(sq)
            for j in range(offsets[lst], offsets[lst + 1]):
                f = factors[j]
                row = codes[j]
                d = base
                if l2 and tail_dim < D:
                    d += f[2 * S] * f[2 * S]
                if prune:
                    tau = scores[0]
                    # Stage 0: variance bounds, summed from the last segment backwards.
                    for s in range(S):
                        if l2:
                            vb[s] = max(np.float32(0.0), f[2 * s] * f[2 * s] + qq[s] - 2 * msig[qi, s])
                        else:
                            vb[s] = -msig[qi, s]
                    for s in range(S - 1, -1, -1):
                        vbsuf[s] = vbsuf[s + 1] + vb[s]
                    if d + vbsuf[0] > tau:
                        continue
                    # Stage 1: segment by segment, swap the variance bound for the 1-bit estimate.
                    dropped = False
                    for s in range(S):
                        nw = seg_len[s] // 64
                        acc, ones = plane_dot(row, seg_word[s], nw, qplanes[s], QUERY_BITS)
                        t = step[s] * np.float32(acc) + lo[s] * np.float32(ones)
                        est = f[2 * s] * rsqrt_len[s] * ((2 * t - qsum[s]) / FAST_COS + margin[s])
                        fast[s] = max(np.float32(0.0), f[2 * s] * f[2 * s] + qq[s] - 2 * est) if l2 else -est
                        d += fast[s]
                        if d + vbsuf[s + 1] > tau:
                            dropped = True
                            break
                    if dropped:
                        continue
                # Stage 2: the accurate estimate replaces the 1-bit one, segment by segment.
                for s in range(S):
                    # <g, q> = Delta <c, q> + (Delta / 2 - 1) sum(q), Delta = 2^(1-B)  (eq. 13, v = 1)
                    delta = np.float32(2.0 ** (1 - seg_bits[s]))
                    cq = code_dot(row, seg_word[s], seg_len[s] // 64, seg_bits[s], qt, seg_dim[s], digits, lanes)
                    est = f[2 * s + 1] * (delta * cq + (delta / 2 - 1) * qsum[s])
                    d += (f[2 * s] * f[2 * s] + qq[s] - 2 * est if l2 else -est) - fast[s]
                    if prune and d > scores[0]:
                        break
                heap_push(scores, labels, d, j)
        heap_sort(scores, labels)
    return out_s, out_l
