"""The multi-stage SAQ/CAQ scan over CSR inverted lists (docs/algorithms.md §7.4-7.5, §8).

Per candidate the running distance starts from cheap bounds and is refined; it is dropped as soon
as it exceeds the current k-th best (tau):

* stage 0 (m < inf): the variance bound ``max(0, ||o_s||^2 + ||x_s||^2 - 2 m sigma_s(q))`` per
  segment, from the stored norm alone (Chebyshev, eq. 20-21);
* stage 1: every segment's estimate from its leading planes (one, or up to FAST_BITS per vector),
  read as a shorter code h with its own unbiased rescale, less FAST_SIGMAS standard deviations of
  its difference from stage 2's estimate (`fast_terms`). The planes are repacked in blocks of 32
  vectors and summed by FastScan against uint8 tables of the query's 4-dim subset sums, built once
  per query: each row's centroid enters through terms derived per row (K1, Kd), as rabitqlib
  folds it into its factors;
* stage 2: the accurate CAQ estimate, float query against all planes of the code, segment by
  segment, each swapped in for its stage-1 term and checked against tau.

Stages 0-1 walk the lists block by block as the official ``searchCluster``, against a bound on
tau from the stage-1 upper bounds; the rows left become candidates, and stage 2 then scores the
candidates of all lists by increasing lower bound and stops at the first over tau (the official
searcher runs stage 2 block by block, where tau is loose until the heap fills). Scores are
smaller-is-better: the estimated squared L2 distance, or minus the estimated inner product. For
inner product the query is not centred and the exact <q, c> is added (docs/algorithms.md §9).
docs/architecture.md, "SAQ's fast path", lists where this departs from the official searcher and
what it measured.
"""

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from .bits import code_dot, prefetch_row
from .config import JIT, PARALLEL_JIT
from .driver import WORST, allowed, answers, new_heaps, unit_l2_as_ip
from .fastscan import BLOCK, accumulate_block, subset_sum_tables
from .finite import query_rows
from .flat import dot, small_matmul
from .lanes import stage1_lanes
from .probe import nearest_centroids
from .topk import heap_pop, heap_push, heap_sort, heapify

#: Stage 1 keeps a candidate unless its estimate, less this many standard deviations of its
#: difference from stage 2's, already exceeds the k-th best. Stage 2 scores candidates by this
#: lower bound, so tau is tight when most are checked: 2 then lost recall that a looser tau had
#: kept (fashion-mnist nprobe 10: 0.9613 against the block-by-block scan's 0.9625); 2.5 matches it
#: (0.9623) with 19 estimates per query against that scan's 34 (pydocs-256-angular: 37 against 76).
FAST_SIGMAS = np.float32(2.5)
#: Stage 1 reads a segment's leading planes through FastScan, as many as fit this many bits per
#: vector, at least one: short high-variance segments (SAQ's first, 64 dimensions) get 3, whose
#: 1-bit estimate alone is coarse; on fashion-mnist that sent 40% fewer rows to stage 2, for 10%
#: more stage-1 work. Two planes everywhere doubled the bytes stage 1 reads, for no net gain.
FAST_BITS = 192
#: Stands for "no bound" in the stage-0 term m * sigma (kernels compile with fastmath: no inf).
NO_BOUND = np.float32(1e30)


@numba.njit(**JIT, inline="always")
def grid_step(bits):
    """The grid step Delta = 2^(1 - bits) of a bits-bit code, exactly: numba's float power of an
    integer ran a loop, 130 ns of each stage-2 estimate (pydocs-256-angular: 38 estimates a query)."""
    return np.float32(2.0) / np.float32(1 << bits)


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


@numba.njit(**JIT, inline="always")
def _accurate(d, slack, tau, code, exact, fast, y, ysum, seg_dim, seg_len, seg_bits, seg_byte, coef):
    """Stage 2: swap each segment's stage-1 term ``fast[s]`` for its CAQ estimate, the centroid
    term's difference Kd_s (`fast_terms`) and coef rescale_s <g_s, y_s> with
    <g, y> = Delta <c, y> + (Delta / 2 - 1) sum(y), Delta = 2^(1-B) (eq. 13); WORST once the
    distance less ``slack`` passes tau. The row's ``exact`` holds rescale_s at 2s, Kd_s at 2s + 1."""
    S = seg_dim.shape[0]
    for s in range(S):
        delta = grid_step(seg_bits[s])
        cy = code_dot(code, seg_byte[s], seg_len[s] // 8, seg_bits[s], y, seg_dim[s])
        d += exact[2 * s + 1] - coef * exact[2 * s] * (delta * cy + (delta / 2 - 1) * ysum[s]) - fast[s]
        if d - slack > tau:
            return WORST
    return d


@numba.njit(**PARALLEL_JIT)
def fast_terms(offsets, codes, factors, CW, origin, seg_dim, seg_len, seg_bits, seg_byte, fast_planes, l2):
    r"""What stage 1 needs per row beyond its planes, derived from the stored codes and factors:
    (rescale_P (n, S), spread (n, S), K1 (n,), Kd (n, S)).

    Stage 1 estimates <o_s, x_s> from the P = fast_planes[s] leading planes of a segment's code:
    the prefix t = c >> (B - P) is itself a P-bit code h = 2^(1-P) (t + 1/2) - 1, and with
    o ~ g <g, o> / ||g||^2 its rescale is rescale_P = ||o||^2 / <h, o> ~ rescale ||g||^2 / <h, g>.
    Its estimate differs from stage 2's (h for g) by a RaBitQ-type error of standard deviation
    ||o|| ||x|| sqrt((tan^2 theta_P - tan^2 theta_B) / (L - 1)), cos theta = <code, o> / (||code|| ||o||);
    ``spread`` is that variance per unit ||x||^2 (0 when P = B).

    The centroid terms let a query's FastScan tables be built once instead of once per list:
    with y = q - r for the model's origin r and z = c - r, the residual query is x = y - z, and
    <h, x> = <h, y> - <h, z> exactly (rabitqlib folds the centroid into its factors the same
    way). With K2_s = ||o_s||^2 + 2 rescale_s <g_s, z_s>, stage 2's sum over segments of
    ||o_s||^2 + ||x_s||^2 - 2 rescale_s <g_s, x_s>, plus the tail's ||o_t||^2 + ||x_t||^2, is
    ||x||^2 + ||o_t||^2 + sum_s K2_s - 2 rescale_s <g_s, y_s>; K1_s is the same for stage 1's h and
    rescale_P. Returned: K1 = ||o_t||^2 + sum_s K1_s, and Kd_s = K2_s - K1_s, what stage 2 adds when
    it swaps segment s's estimate. The inner-product scores involve no centroid term (``l2`` False:
    K1 = Kd = 0).
    """
    S = seg_dim.shape[0]
    n = codes.shape[0]
    rescale_p = np.zeros((n, S), np.float32)
    spread = np.zeros((n, S), np.float32)
    K1 = np.zeros(n, np.float32)
    Kd = np.zeros((n, S), np.float32)
    has_tail = factors.shape[1] > 2 * S
    for lst in numba.prange(offsets.shape[0] - 1):
        z = CW[lst] - origin
        c = np.empty(seg_len.max(), np.int32)
        for j in range(offsets[lst], offsets[lst + 1]):
            f = factors[j]
            k1 = f[2 * S] * f[2 * S] if has_tail else np.float32(0.0)
            for s in range(S):
                B, P, L = seg_bits[s], fast_planes[s], seg_len[s]
                delta, delta_p = np.float64(grid_step(B)), np.float64(grid_step(P))
                planes = codes[j, seg_byte[s]:seg_byte[s] + B * (L // 8)]  # zero-based, see subset_sum_tables
                zs = z[seg_dim[s]:seg_dim[s] + L]
                c[:L] = 0
                for p in range(B):  # MSB plane first; each pass over the L dimensions vectorizes
                    plane = planes[p * (L // 8):(p + 1) * (L // 8)]
                    for i in range(L):
                        c[i] = 2 * c[i] + ((plane[i >> 3] >> (i & 7)) & 1)
                gg = hg = hh = gz = hz = 0.0
                for i in range(L):
                    g = delta * (c[i] + 0.5) - 1
                    h = delta_p * ((c[i] >> (B - P)) + 0.5) - 1
                    gg += g * g
                    hg += h * g
                    hh += h * h
                    gz += g * zs[i]
                    hz += h * zs[i]
                norm, rescale = f[2 * s], f[2 * s + 1]
                if rescale > 0:
                    rp = rescale * gg / hg
                    tan2_b = rescale * rescale * gg / (norm * norm) - 1
                    tan2_p = rp * rp * hh / (norm * norm) - 1
                    rescale_p[j, s] = rp
                    spread[j, s] = norm * norm * max(tan2_p - tan2_b, 0.0) / (L - 1)
                k1 += norm * norm + 2 * rescale_p[j, s] * hz
                if l2:
                    Kd[j, s] = 2 * (rescale * gz - rescale_p[j, s] * hz)
            if l2:
                K1[j] = k1
    return rescale_p, spread, K1, Kd


@numba.njit(**JIT)
def _prefetch_list(lst, block_offsets, packed, lanes, bounds, bounded, CW):
    """Start loading what stages 0-1 read of list ``lst``: its FastScan blocks, their lanes (and
    stage 0's, when on) and its centroid. Requested together while the list before is scanned,
    they arrive in parallel; met one miss at a time, a block's lines cost as much again as its
    stage 1 (fashion-mnist, measured when a block held 6 KB)."""
    for b in range(block_offsets[lst], block_offsets[lst + 1]):
        prefetch_row(packed, b)
        prefetch_row(lanes, b)
        if bounded:
            prefetch_row(bounds, b)
    prefetch_row(CW, lst)


@numba.njit(**JIT)
def _saq_begin(data, qi, k):
    """Per-query scratch: y = q - r (L2) or q (IP), its FastScan tables (one per packed column)
    and sums per segment, which no list changes, the 32-lane buffers of a block, and room for
    every probed row as a stage-2 candidate. The first list's blocks are requested before the
    tables are built, which hides their fetch."""
    QW, CW, origin, msig, probes, offsets, block_offsets, packed, lanes, bounds, exact, codes, seg_dim, seg_len, \
        seg_bits, seg_byte, fast_col, fast_planes, fast_dim, tail_dim, l2, prune = data
    D = QW.shape[1]
    S = seg_dim.shape[0]
    bounded = False  # stage 0 runs only where some m * sigma is finite (m < inf)
    for s in range(S):
        bounded |= msig[qi, s] < NO_BOUND
    if probes.shape[1] and probes[qi, 0] >= 0:
        _prefetch_list(probes[qi, 0], block_offsets, packed, lanes, bounds, bounded, CW)
    y = np.empty(D, np.float32)
    for i in range(D):
        y[i] = QW[qi, i] - origin[i] if l2 else QW[qi, i]
    by_dim = np.empty((max(tail_dim // 4, 1), 16), np.uint8)
    coef = np.float32(2.0) if l2 else np.float32(1.0)
    seg = np.empty((5, S), np.float32)  # rows: sum y_s, ||x_s||^2, scale, offset, stage-0 bias
    sums = np.empty(2, np.float32)
    for s in range(S):
        bias, step = subset_sum_tables(y, seg_dim[s], seg_len[s], by_dim, sums)
        # <h, y> = delta_P <t, y> + (delta_P / 2 - 1) sum(y) for the P-plane prefix t, and each plane's
        # <b, y> = bias + step * acc (fastscan.subset_sum_tables), so <h, y> = scale * acc + offset
        # with acc summing plane p's lookups times 2^(P-1-p); stage 1's term is -coef rescale_P <h, y>
        # (coef 2 for L2, 1 for inner product), so rows 2-3 hold -coef scale and -coef offset
        P = fast_planes[s]
        delta_p = grid_step(P)
        seg[0, s] = sums[0]
        seg[1, s] = sums[1]  # inner product: x = y = q; L2 lists overwrite it
        seg[2, s] = -coef * delta_p * step
        seg[3, s] = -coef * (delta_p * ((1 << P) - 1) * bias + (delta_p / 2 - 1) * sums[0])
        seg[4, s] = -msig[qi, s]
    qtable = np.empty((2 * fast_dim.shape[0], 16), np.uint8)
    for j in range(fast_dim.shape[0]):  # column j holds dimensions 8 fast_dim[j] .. + 7 of some plane
        qtable[2 * j] = by_dim[2 * fast_dim[j]]
        qtable[2 * j + 1] = by_dim[2 * fast_dim[j] + 1]
    rows = 0
    for p in range(probes.shape[1]):
        if probes[qi, p] >= 0:
            rows += offsets[probes[qi, p] + 1] - offsets[probes[qi, p]]
    # candidates: (lower bound, stage-1 estimate, slack) and the stage-1 terms per segment, rows
    cand = np.empty((rows, 3), np.float32), np.empty((rows, S), np.float32), np.empty(rows, np.int64)
    upper = np.full(k, WORST, np.float32), np.full(k, -1, np.int64)  # the k smallest upper bounds
    return y, qtable, seg, np.zeros(S + 1, np.float32), np.empty(D, np.float32), np.empty(BLOCK, np.float32), \
        np.empty(BLOCK, np.float32), np.empty(BLOCK, np.float32), np.empty((S, BLOCK), np.int32), bounded, cand, \
        np.zeros(1, np.int64), upper


@numba.njit(**JIT)
def _saq_lists(data, scratch, qi, scores, labels, live):
    """Stages 0-1 over the blocks of the query's lists (see the module docstring): the rows left
    become stage-2 candidates (`_saq_stage2`); without pruning, every row is scored here. One call
    for all the lists: a call takes a reference to every array of ``data`` and ``scratch`` on entry
    and drops it on exit (about 80 atomic counts), which cost 0.3-0.4 us a list as a call per
    list (pydocs-256-angular)."""
    QW, CW, origin, msig, probes, offsets, block_offsets, packed, lanes, bounds, exact, codes, seg_dim, seg_len, \
        seg_bits, seg_byte, fast_col, fast_planes, fast_dim, tail_dim, l2, prune = data
    y, qtable, seg, xx, sq, bound, dcur, slack, acc, bounded, cand, ncand, upper = scratch
    ysum, scale, offset, vbias = seg[0], seg[2], seg[3], seg[4]
    D = QW.shape[1]
    S = seg_dim.shape[0]
    zero = np.float32(0.0)
    coef = np.float32(2.0) if l2 else np.float32(1.0)
    sigmas = coef * FAST_SIGMAS
    bounds_c, fast_c, rows_c = cand
    for p in range(probes.shape[1]):
        lst = probes[qi, p]
        if lst < 0:
            continue
        if p + 1 < probes.shape[1] and probes[qi, p + 1] >= 0:
            _prefetch_list(probes[qi, p + 1], block_offsets, packed, lanes, bounds, bounded, CW)
        # Per list: ||x_s||^2 of the query residual per segment and tail (L2), or -<q, c> (IP).
        if l2:
            for i in range(D):
                sq[i] = (QW[qi, i] - CW[lst, i]) * (QW[qi, i] - CW[lst, i])
            for s in range(S + 1):  # the segments, then the tail
                a = seg_dim[s] if s < S else tail_dim
                part = sq[a:a + seg_len[s] if s < S else D]  # zero-based: see fastscan.subset_sum_tables
                t = zero
                for i in range(part.shape[0]):
                    t += part[i]
                xx[s] = t
            base = zero
            for s in range(S + 1):
                base += xx[s]
            for s in range(S):
                seg[1, s] = xx[s]
                vbias[s] = xx[s] - 2 * msig[qi, s]
        else:
            base = -dot(QW[qi], CW[lst])
        first = offsets[lst]
        end = offsets[lst + 1]
        if not prune:  # stage 2 alone: no stage-1 terms (0), and no distance passes WORST
            unread = np.zeros(S, np.float32)
            for j in range(first, end):
                if allowed(live, j):
                    b = block_offsets[lst] + (j - first) // BLOCK
                    v = (j - first) % BLOCK
                    d = _accurate(base + lanes[b, 2 * S, v], zero, WORST, codes[j], exact[j], unread, y, ysum,
                                  seg_dim, seg_len, seg_bits, seg_byte, coef)
                    heap_push(scores, labels, d, j)
            continue
        for b in range(block_offsets[lst], block_offsets[lst + 1]):
            start = first + (b - block_offsets[lst]) * BLOCK
            nv = min(BLOCK, end - start)
            tau = upper[0][0]
            alive = (np.int64(1) << nv) - 1  # the block's lanes still in play, as bits
            if live.shape[0]:  # rows outside the bitset (deleted, filtered out) go no further
                for v in range(nv):
                    if not allowed(live, start + v):
                        alive ^= np.int64(1) << v
                if alive == 0:
                    continue
            # Stage 0: the variance bounds, when there are any (m < inf); the sums over the 32 lanes
            # are branch-free so that they vectorize.
            if bounded:
                for v in range(BLOCK):
                    bound[v] = xx[S] + bounds[b, S, v] * bounds[b, S, v] if l2 else base
                for s in range(S):
                    for v in range(BLOCK):
                        bound[v] += max(zero, bounds[b, s, v] * bounds[b, s, v] + vbias[s]) if l2 else vbias[s]
                for v in range(nv):
                    if bound[v] > tau:
                        alive &= ~(np.int64(1) << v)
                if alive == 0:
                    continue
            # Stage 1: every segment's P-plane estimate with the centroid term K1, less FAST_SIGMAS
            # standard deviations of its difference from stage 2's estimate (`lanes.stage1_lanes`).
            # Each segment's FastScan sums are kept apart (acc[s]): a candidate's terms come from them.
            for s in range(S):
                acc_s = acc[s]
                for v in range(BLOCK):
                    acc_s[v] = 0
                accumulate_block(qtable, packed, b, fast_col[s], seg_len[s] // 8, fast_planes[s], acc_s)
            passed = stage1_lanes(lanes, b, acc, seg, base, tau, sigmas, alive, dcur, slack)
            # A row becomes a candidate when its lower bound is below the k-th smallest upper bound so
            # far (estimate plus the same slack): a bound on tau before any stage-2 estimate exists.
            # Twice the slack for the upper bound kept the same recall and stage-2 estimates on
            # fashion-mnist and pydocs-256-angular, with 1.6-2.9x the candidates to sort.
            while passed:
                v = trailing_zeros(passed)
                passed &= passed - 1
                if dcur[v] - slack[v] <= upper[0][0]:
                    m = ncand[0]
                    bounds_c[m, 0] = dcur[v] - slack[v]
                    bounds_c[m, 1] = dcur[v]
                    bounds_c[m, 2] = slack[v]
                    for s in range(S):
                        fast_c[m, s] = lanes[b, s, v] * (scale[s] * np.float32(acc[s, v]) + offset[s])
                    rows_c[m] = start + v
                    ncand[0] = m + 1
                    heap_push(upper[0], upper[1], dcur[v] + slack[v], start + v)


@numba.njit(**JIT)
def _saq_stage2(data, scratch, scores, labels):
    """Stage 2 over a query's candidates from every list, by increasing stage-1 lower bound: tau
    tightens from the most promising rows of all lists at once (block by block, the first block
    of the first list filled the heap with whatever it held: twice as many estimates on
    fashion-mnist), and the first bound over tau ends the query.

    The candidates are popped from a max-heap of their negated bounds, so only the few scored before
    tau ends the query are put in order: sorting them first (those below the k-th smallest
    stage-1 estimate, then the rest below tau) made the whole scan 1.07-1.12x slower
    (pydocs-256-angular, 206 candidates a query at nprobe 16; fashion-mnist). The code rows at the
    heap's top three slots, which hold the next candidate and the one after it, are requested
    before a candidate is scored: without them the scan took 1.2x as long."""
    exact, codes, seg_dim, seg_len, seg_bits, seg_byte, l2 = data[10], data[11], data[12], data[13], data[14], \
        data[15], data[20]
    y, ysum, cand, ncand, upper = scratch[0], scratch[2][0], scratch[10], scratch[11], scratch[12]
    bounds_c, fast_c, rows_c = cand
    coef = np.float32(2.0) if l2 else np.float32(1.0)
    keys, items = np.empty(ncand[0], np.float32), np.empty(ncand[0], np.int64)
    n = 0
    for c in range(ncand[0]):  # rows whose bound passed the k-th upper bound as it tightened
        if bounds_c[c, 0] <= upper[0][0]:
            keys[n], items[n] = -bounds_c[c, 0], c  # the largest key is the smallest bound
            n += 1
    heapify(keys, items, n)
    while n:
        key, c = heap_pop(keys, items, n)
        n -= 1
        if -key > scores[0]:
            break
        for t in range(min(n, 3)):
            prefetch_row(codes, rows_c[items[t]])
            prefetch_row(exact, rows_c[items[t]])
        j = rows_c[c]
        d = _accurate(bounds_c[c, 1], bounds_c[c, 2], scores[0], codes[j], exact[j], fast_c[c], y, ysum, seg_dim,
                      seg_len, seg_bits, seg_byte, coef)
        heap_push(scores, labels, d, j)


@numba.njit(**JIT)
def _saq_query(data, qi, live, scores, labels):
    """Top-k (scores, labels) of query qi over its probed lists, sorted (stages 0-1 list by list,
    then stage 2)."""
    scratch = _saq_begin(data, qi, scores.shape[0])
    _saq_lists(data, scratch, qi, scores, labels, live)
    _saq_stage2(data, scratch, scores, labels)
    heap_sort(scores, labels)


@numba.njit(**PARALLEL_JIT)
def saq_scan(QW, CW, origin, msig, probes, offsets, block_offsets, packed, lanes, bounds, exact, codes, seg_dim,
             seg_len, seg_bits, seg_byte, fast_col, fast_planes, fast_dim, tail_dim, l2, prune, live, k):
    """Top-k (scores, positions) of every query over its probed lists: one call per batch.

    QW (nq, D) and CW (nlist, D) are queries and centroids in the codec's rotated space, origin
    (D,) the point r the centroid terms are taken from (`fast_terms`); msig (nq, S) holds
    m * sigma_s(q) per non-zero segment; codes (n, bytes) uint8 rows of bit planes, segment s
    from byte seg_byte[s]. Per FastScan block, packed (blocks, columns, 32) holds the
    fast_planes[s] leading planes of every segment from column fast_col[s] (column j covers
    dimensions 8 fast_dim[j] .. + 7), lanes (blocks, 2S + 1, 32) lane by lane the rescale_P and
    spread (`fast_terms`) of every segment, then K1, and bounds (blocks, S + 1, 32) stage 0's
    ||o_s|| and tail norm. Stage 2 reads exact (n, 2S), rescale_s and Kd_s per row, beside the
    code row: apart from the blocks, only for the few rows that reach it.
    ``prune`` False scores every candidate exactly (stage 2 only). ``live``: the rows that may be
    returned (driver.py).
    """
    data = (QW, CW, origin, msig, probes, offsets, block_offsets, packed, lanes, bounds, exact, codes, seg_dim, seg_len,
            seg_bits, seg_byte, fast_col, fast_planes, fast_dim, tail_dim, l2, prune)
    out_s, out_l = new_heaps(QW.shape[0], k)
    for qi in numba.prange(QW.shape[0]):
        _saq_query(data, qi, live, out_s[qi], out_l[qi])
    return out_s, out_l


@numba.njit(**JIT)
def saq_scan_one(QW, CW, origin, msig, probes, offsets, block_offsets, packed, lanes, bounds, exact, codes, seg_dim,
                 seg_len, seg_bits, seg_byte, fast_col, fast_planes, fast_dim, tail_dim, l2, prune, live, k):
    """`saq_scan` on one thread, for a single query: it skips the parallel launch, 5-8 us of a
    65 us scan on fashion-mnist (docs/benchmarks.md, "SAQ's fast path")."""
    data = (QW, CW, origin, msig, probes, offsets, block_offsets, packed, lanes, bounds, exact, codes, seg_dim, seg_len,
            seg_bits, seg_byte, fast_col, fast_planes, fast_dim, tail_dim, l2, prune)
    out_s, out_l = new_heaps(1, k)
    _saq_query(data, 0, live, out_s[0], out_l[0])
    return out_s, out_l


@numba.njit(**JIT)
def saq_query_one(Q, W, CW, lead, start, n, keep, origin, msig, offsets, block_offsets, packed, lanes, bounds,
                  exact, codes, seg_dim, seg_len, seg_bits, seg_byte, fast_col, fast_planes, fast_dim, tail_dim, l2,
                  prune, live, k):
    """One query (1, dim) end to end in one call: rotated by W (float16 bits, `half.as_half_bits`),
    its n lists found in the PCA basis (`probe.nearest_centroids`, ``lead`` and ``start`` CW's
    `probe.probe_operands`; only lists where ``keep`` holds, unless empty) and scanned
    (`saq_scan_one`). Returns (rotated query, lists, scores, rows); the first two serve a
    collection's other segments."""
    QW = small_matmul(Q, W)
    probes = nearest_centroids(QW, CW, lead, start, n, keep)
    scores, rows = saq_scan_one(QW, CW, origin, msig, probes, offsets, block_offsets, packed, lanes, bounds, exact,
                                codes, seg_dim, seg_len, seg_bits, seg_byte, fast_col, fast_planes, fast_dim, tail_dim,
                                l2, prune, live, k)
    return QW, probes, scores, rows


@numba.njit(**JIT)
def saq_answer_one(Q, ids, cosine, W, CW, lead, start, n, keep, origin, msig, offsets, block_offsets, packed, lanes,
                   bounds, exact, codes, seg_dim, seg_len, seg_bits, seg_byte, fast_col, fast_planes, fast_dim,
                   tail_dim, l2, prune, live, k):
    """A single query (1, dim) as `Index.search` answers it, in one call: checked and, for
    ``cosine``, normalised (`finite.query_rows`), then `saq_query_one`, then the reported
    distances and the ids of ``ids`` (`driver.answers`). Returns (distances, ids, row positions,
    bad): bad is -1, or the query's row when it is not finite or (cosine) zero, and nothing was
    searched."""
    X, bad = query_rows(Q, cosine)
    if bad >= 0:
        return np.empty((0, k), np.float32), np.empty((0, k), np.int64), np.empty((0, k), np.int64), bad
    _, _, scores, rows = saq_query_one(X, W, CW, lead, start, n, keep, origin, msig, offsets, block_offsets, packed,
                                       lanes, bounds, exact, codes, seg_dim, seg_len, seg_bits, seg_byte, fast_col,
                                       fast_planes, fast_dim, tail_dim, l2, prune, live, k)
    if cosine:
        unit_l2_as_ip(scores, rows)
    distances, found = answers(scores, rows, ids, l2 and not cosine)
    return distances, found, rows, bad
