r"""Fused decode-and-distance scans for LVQ codes (docs/algorithms.md §4).

A row of ``codes`` is ``[l: f16][Δ: f16][level 1: D·B1 bits][level 2: D·B2 bits]``, fields packed
little-endian bit-first. Level 1 decodes to :math:`\hat x_j = l + Δ c_j`, levels 1+2 to
:math:`l + Δ c_j - Δ/2 + Δ_2 c2_j` with :math:`Δ_2 = Δ/(2^{B_2}-1)`, both relative to the list
centroid plus the global mean μ. Scores are smaller-is-better:

* l2: :math:`\|q - c - μ - \hat x\|^2`, decoded inside the sum (8 bits) or from one row's codes
  unpacked into a per-thread (D,) buffer; decoded vectors are never materialised;
* ip: :math:`-(\langle q, c+μ\rangle + l\sum_j q_j + Δ\langle q, c\rangle)` (level 1).
"""

import math

import numba
import numpy as np

from .config import JIT, PARALLEL_JIT
from .driver import ivf_topk, new_heaps, push
from .topk import heap_push, heap_sort

#: bytes of the two float16 constants at the start of each row
HEADER = 4


@numba.njit(**JIT)
def half_to_float(lo_byte, hi_byte):
    """IEEE float16 (two little-endian bytes) to float32."""
    h = np.int64(lo_byte) | (np.int64(hi_byte) << 8)
    e = (h >> 10) & 0x1F
    f = h & 0x3FF
    if e == 0:
        v = math.ldexp(float(f), -24)
    elif e == 31:
        v = math.inf
    else:
        v = math.ldexp(float(f + 1024), int(e) - 25)
    return np.float32(-v if h >> 15 else v)


@numba.njit(**JIT)
def code_at(row, start, j, B):
    """The B-bit field j of the bit-packed level starting at byte ``start`` of ``row``."""
    bit = j * B
    byte = start + (bit >> 3)
    w = np.int64(row[byte])
    if byte + 1 < row.shape[0]:
        w |= np.int64(row[byte + 1]) << 8
    if byte + 2 < row.shape[0]:
        w |= np.int64(row[byte + 2]) << 16
    return (w >> (bit & 7)) & ((1 << B) - 1)


@numba.njit(**JIT)
def nibbles(b):
    """(low, high) nibble of a byte as float32, in float arithmetic: numba widens integer
    shifts and masks to int64, whose float conversion does not vectorise on AVX2."""
    f = np.float32(b)
    hi = np.floor(f * np.float32(0.0625))
    return f - np.float32(16.0) * hi, hi


@numba.njit(**JIT)
def unpack_level(row, start, B, out):
    """out[j] = field j of the B-bit level starting at byte ``start`` (fast paths for 8 and 4 bits)."""
    D = out.shape[0]
    if B == 8:
        for j in range(D):
            out[j] = np.float32(row[start + j])
    elif B == 4:
        for j in range(D // 2):
            out[2 * j], out[2 * j + 1] = nibbles(row[start + j])
        if D % 2:
            out[D - 1] = np.float32(row[start + D // 2] & 15)
    else:
        for j in range(D):
            out[j] = np.float32(code_at(row, start, j, B))


@numba.njit(**JIT)
def level1_l2(qr, row, B, lo, delta, scratch):
    r""":math:`\sum_j (qr_j - l - Δ c_j)^2` over the level-1 code; bytes are read in place for
    8 bits, other widths are unpacked into ``scratch`` (D,) first so the sum stays SIMD."""
    s = np.float32(0.0)
    if B == 8:
        for j in range(qr.shape[0]):
            d = qr[j] - lo - delta * np.float32(row[HEADER + j])
            s += d * d
        return s
    unpack_level(row, HEADER, B, scratch)
    for j in range(qr.shape[0]):
        d = qr[j] - lo - delta * scratch[j]
        s += d * d
    return s


@numba.njit(**JIT)
def level1_dot(q, row, B, scratch):
    r""":math:`\sum_j q_j c_j` over the level-1 code (``scratch`` as in ``level1_l2``)."""
    s = np.float32(0.0)
    if B == 8:
        for j in range(q.shape[0]):
            s += q[j] * np.float32(row[HEADER + j])
        return s
    unpack_level(row, HEADER, B, scratch)
    for j in range(q.shape[0]):
        s += q[j] * scratch[j]
    return s


@numba.njit(**JIT)
def two_level_score(q, qr, row, B1, B2, level2, base, qsum, is_l2, c1, c2):
    """The score from the full two-level reconstruction (shortlist re-ranking only);
    c1, c2 are (D,) float32 scratch."""
    lo = half_to_float(row[0], row[1])
    delta = half_to_float(row[2], row[3])
    delta2 = delta / np.float32((1 << B2) - 1)
    shift = lo - np.float32(0.5) * delta
    unpack_level(row, HEADER, B1, c1)
    unpack_level(row, level2, B2, c2)
    s = np.float32(0.0)
    if is_l2:
        for j in range(qr.shape[0]):
            d = qr[j] - (shift + delta * c1[j] + delta2 * c2[j])
            s += d * d
        return s
    for j in range(q.shape[0]):
        s += q[j] * (delta * c1[j] + delta2 * c2[j])
    return base - shift * qsum - s


@numba.njit(**JIT)
def _list_query(q, centroid, mean, qr):
    """qr = q - c - μ (l2) and -<q, c + μ> (ip)."""
    s = np.float32(0.0)
    for j in range(q.shape[0]):
        qr[j] = q[j] - centroid[j] - mean[j]
        s -= q[j] * (centroid[j] + mean[j])
    return s


@numba.njit(**JIT)
def _lvq_begin(data, qi):
    """(q - c - mu buffer, scratch for unpacked codes, sum of q)."""
    Q, centroids, mean, offsets, codes, B1, is_l2 = data
    D = Q.shape[1]
    qsum = np.zeros(1, dtype=np.float32)
    for j in range(D):
        qsum[0] += Q[qi, j]
    return np.empty(D, dtype=np.float32), np.empty(D, dtype=np.float32), qsum


@numba.njit(**JIT)
def _lvq_list(data, scratch, qi, p, lst, scores, labels, live):
    """Level-1 scores of one list's rows."""
    Q, centroids, mean, offsets, codes, B1, is_l2 = data
    qr, c1, qsum = scratch
    q = Q[qi]
    base = _list_query(q, centroids[lst], mean, qr)
    for r in range(offsets[lst], offsets[lst + 1]):
        row = codes[r]
        lo = half_to_float(row[0], row[1])
        delta = half_to_float(row[2], row[3])
        if is_l2:
            s = level1_l2(qr, row, B1, lo, delta, c1)
        else:
            s = base - lo * qsum[0] - delta * level1_dot(q, row, B1, c1)
        push(scores, labels, s, r, live)


@numba.njit(**PARALLEL_JIT)
def lvq_scan(Q, centroids, mean, probes, offsets, codes, B1, B2, level2, is_l2, live, kscan, k):
    """Top-k row positions per query: level 1 scanned into a shortlist of ``kscan``, re-ranked
    with levels 1+2 when B2 > 0. One call per query batch."""
    short_s, short_l = ivf_topk(_lvq_begin, _lvq_list, (Q, centroids, mean, offsets, codes, B1, is_l2),
                                probes, live, kscan)
    if B2 == 0:
        return short_s[:, :k].copy(), short_l[:, :k].copy()
    nq, D = Q.shape
    out_s, out_l = new_heaps(nq, k)
    for qi in numba.prange(nq):
        q = Q[qi]
        qr = np.empty(D, dtype=np.float32)
        c1 = np.empty(D, dtype=np.float32)
        c2 = np.empty(D, dtype=np.float32)
        qsum = np.float32(0.0)
        for j in range(D):
            qsum += q[j]
        for c in range(kscan):
            r = short_l[qi, c]
            if r < 0:
                continue
            lst = np.searchsorted(offsets, r, side="right") - 1
            base = _list_query(q, centroids[lst], mean, qr)
            s = two_level_score(q, qr, codes[r], B1, B2, level2, base, qsum, is_l2, c1, c2)
            heap_push(out_s[qi], out_l[qi], s, r)
        heap_sort(out_s[qi], out_l[qi])
    return out_s, out_l
