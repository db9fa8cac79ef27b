"""SAQ: PCA, DP segmentation and bit allocation, a random rotation and CAQ per segment.

docs/algorithms.md §7. The PCA is fitted on a sample, vectors are padded to a multiple of 64, the
plan ``[(L_s, B_s), ...]`` comes from the DP over PCA variances (allocation.py), every non-zero
segment gets its own random orthogonal rotation, and the residual to the IVF centroid is CAQ
encoded segment by segment. PCA and rotations are folded into one (dim, D_pad) matrix W with
orthonormal rows, so ``(x - c) @ W`` preserves distances and inner products.

Per vector: the bit planes of every segment (MSB plane first, segment after segment) and the
float32 factors ``(||o_s||, rescale_s)`` per non-zero segment, then the 0-bit tail's norm.
``CAQ{B}`` is the one-segment special case without PCA: the Extended-RaBitQ-equivalent baseline.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..kernels.bits import pack_planes, unpack_planes
from ..kernels.config import readonly
from ..kernels.driver import unit_l2_as_ip
from ..kernels.fastscan import pack_blocks
from ..kernels.flat import small_matmul
from ..kernels.half import as_half_bits, from_half_bits
from ..kernels.probe import (LEAD, nearest_centroids, nearest_centroids_batch, nearest_centroids_raw,
                             nearest_residuals, probe_operands)
from ..kernels.scan import (FAST_BITS, NO_BOUND, fast_terms, saq_answer_one, saq_query_one, saq_scan, saq_scan_one,
                            segment_sigmas)
from ..linalg import SMALL_ROWS, block_diag, fit_pca, matmul, padded_dim, random_orthogonal
from ..validation import check_int
from .allocation import check_bits, plan_segments
from .base import Codec
from .code_adjustment import ROUNDS, caq_encode, grid_vectors, reconstruct

#: `kernels.probe`'s keep mask that keeps every list (writable, as a filter's masks are: one specialisation)
ALL_LISTS = np.zeros(0, np.bool_)
#: Rows encoded per GEMM + CAQ pass, bounding the memory of the rotated residuals.
ENCODE_CHUNK = 16384


class SAQCodec(Codec):
    """``SAQ{bits}``: fractional average bits per dimension in [0.2, 13], e.g. SAQ0.5, SAQ4."""

    #: m: stage-0 Chebyshev multiplier, off (inf) by default: on fashion-mnist it pruned no more than
    #: stage 1 does while a single query's bounds cost 10-25 us; cosine ignores it (`variance_bounds`).
    #: prune 0 scores every candidate exactly.
    search_params = {"m": (numbers.Real, 0.0, math.inf, math.inf), "prune": (int, 0, 1, 1)}
    serial_queries = 1  # one query: the rotation, probe and scan kernels all run on its thread

    def __init__(self, dim: int, metric: str, *, bits: float = 4.0, rounds: int = ROUNDS, seed: int = 0):
        super().__init__(dim, metric, seed=seed)
        self.bits = bits
        self.rounds = rounds
        self.plan_: list[tuple[int, int]] | None = None
        self.modelled_error_ = None
        self.transform_ = self.mean_ = self.components_ = self.variance_ = None
        self.origin_ = None

    @classmethod
    def _from_match(cls, match, dim, metric, *, transform, seed):
        check_int(dim, "dim", match.group(0))
        return cls(dim, metric, bits=check_bits(float(match.group(1)), match.group(0)), seed=seed)

    @property
    def spec(self) -> str:
        return f"SAQ{self.bits:g}"

    # --- layout derived from the plan ------------------------------------------------------
    @property
    def padded_dim(self) -> int:
        return padded_dim(self.dim)

    @property
    def segments(self) -> list[tuple[int, int, int]]:
        """(first dimension, length, bits) of every non-zero segment, in plan order."""
        out, start = [], 0
        for length, bits in self.plan_ or []:
            if bits:
                out.append((start, length, bits))
            start += length
        return out

    @property
    def l2_form(self) -> bool:
        """Whether scans estimate squared L2 distances: for ``l2``, and for ``cosine``, where on unit
        vectors -<q, x> = ||q - x||^2 / 2 - 1 (docs/algorithms.md §9); inner product scans <x, q>."""
        return self.metric != "ip"

    @property
    def tail_dim(self) -> int:
        """First dimension of the 0-bit tail (D_pad when there is none)."""
        return sum(length for length, bits in self.plan_ if bits)

    @property
    def code_size(self) -> int:
        return sum(length * bits for _, length, bits in self.segments) // 8

    @property
    def n_factors(self) -> int:
        if self.plan_ is None:
            return 0
        return 2 * len(self.segments) + int(self.tail_dim < self.padded_dim)

    @property
    def is_trained(self) -> bool:
        return self.plan_ is not None

    # --- training --------------------------------------------------------------------------
    def fit(self, X, centroids, nearest):  # the PCA and the plan see the vectors, not residuals
        rng = np.random.default_rng(self.seed)
        self.mean_, self.components_, variance = fit_pca(X, rng)
        self.origin_ = self.mean_
        self.variance_ = np.zeros(self.padded_dim, np.float32)
        self.variance_[:self.dim] = variance
        plan, self.modelled_error_ = plan_segments(self.variance_, self.bits)
        rotations = [random_orthogonal(length, rng) for length, bits in plan if bits]
        pca = np.zeros((self.dim, self.padded_dim), np.float32)
        pca[:, :self.dim] = self.components_
        self._set_model(plan, matmul(pca, block_diag(rotations, self.padded_dim)))
        return self

    def _set_model(self, plan, transform):
        self.plan_ = [(int(length), int(bits)) for length, bits in plan]
        self.transform_ = np.ascontiguousarray(transform, dtype=np.float32)
        # searches rotate by the transform rounded to float16 (`rotate`), read as bits by one query
        self._w_half = readonly(as_half_bits(self.transform_))
        self._w_search = readonly(from_half_bits(self._w_half))
        self._w_lead = readonly(np.ascontiguousarray(self._w_half[:, :LEAD]))  # a probe's first pass
        # the columns a row reaches (past dim the padding stays zero outside the rotated
        # segments), and at least the probe's first pass
        width = max(self.tail_dim, self.dim, LEAD)
        self._w_exact = readonly(np.ascontiguousarray(self.transform_[:, :width]))
        self._cache = {}
        segs = self.segments
        self._unbounded = readonly(np.full((1, len(segs)), NO_BOUND, np.float32))  # one query's, m = inf
        self._seg_arrays = tuple(np.array([s[i] for s in segs], np.int64) for i in range(3))
        words = np.array([length * bits // 64 for _, length, bits in segs], np.int64)
        self._seg_word = np.concatenate([[0], np.cumsum(words)[:-1]]).astype(np.int64)
        # stage 1's FastScan columns: the leading planes of every segment, one after another
        planes = np.array([min(bits, max(1, FAST_BITS // length)) for _, length, bits in segs], np.int64)
        widths = np.array([length // 8 for _, length, _ in segs], np.int64)
        cols = np.concatenate([[0], np.cumsum(planes * widths)[:-1]]).astype(np.int64)
        self._fast_bytes = np.concatenate([np.arange(8 * w, 8 * w + p * width) for w, p, width
                                           in zip(self._seg_word, planes, widths)] or [[]]).astype(np.int64)
        fast_dim = np.concatenate([np.tile(np.arange(start // 8, start // 8 + width), p) for (start, _, _), p, width
                                   in zip(segs, planes, widths)] or [[]]).astype(np.int64)
        # the origin r of the centroid terms, rotated; the inner-product scan keeps the raw query (its
        # estimate of <o, q> does not involve the centroid), so r = 0 there
        origin = self.origin_ if self.l2_form and self.origin_ is not None else np.zeros(self.dim, np.float32)
        self._rotated_origin = readonly(self.rotate(origin[None])[0])
        # what every scan passes after the lists' arrays, built once per model
        self._scan_layout = (*self._seg_arrays, readonly(8 * self._seg_word), readonly(cols), readonly(planes),
                             readonly(fast_dim), self.tail_dim, self.l2_form)

    def rotate(self, X: np.ndarray) -> np.ndarray:
        """Rows in the codec's space as searches see them: PCA, padding and per-segment rotations
        in one product, by the transform rounded to float16. A single query then reads half the
        bytes (the rotation's cost: the matrix streamed from L3); on fashion-mnist the distances
        to the nearest neighbours move by 5e-5 of their value on average (3e-4 at most), a
        hundredth of SAQ4's estimate error. Queries, centroids and the origin all go through it;
        encoding uses the exact transform."""
        X = np.asarray(X, dtype=np.float32)
        if len(X) <= SMALL_ROWS:
            return small_matmul(np.ascontiguousarray(X), self._w_half)
        return matmul(X, self._w_search)

    # --- encoding --------------------------------------------------------------------------
    def encode(self, X, centroids, assign):
        self._check_trained("encode")
        codes, factors = self._empty_codes(len(X))
        coded = self.transform_[:, :self.tail_dim]
        for a in range(0, len(X), ENCODE_CHUNK):
            b = min(len(X), a + ENCODE_CHUNK)
            residual = np.asarray(X[a:b], np.float32) - centroids[assign[a:b]]
            O = matmul(residual, coded)
            # The transform is orthogonal: the tail holds whatever norm the coded part lacks.
            tail = (np.einsum("ij,ij->i", residual, residual, dtype=np.float64)
                    - np.einsum("ij,ij->i", O, O, dtype=np.float64))
            self._encode_rotated(O, tail, codes[a:b], factors[a:b])
        return codes, factors

    def assign_encode(self, X, centroids, nearest):
        """For L2 after a PCA, the lists are found in the codec's basis (`kernels.probe`, exact):
        the rows are rotated once, and their rotated residual is the difference of two rotated
        rows, instead of a second product. On fashion-mnist (one thread) the assignment took
        0.4-0.65 s against faiss's 1.2-2.3 s in the same runs; the one product is 11% wider than
        the coded columns alone, as the probe needs the tail's distances (`_w_exact`)."""
        if not self._probes_itself or self.metric != "l2" or len(centroids) == 1:
            return super().assign_encode(X, centroids, nearest)
        self._check_trained("encode")
        def rotated():  # by the exact transform, as the rows
            CW = readonly(matmul(centroids, self._w_exact))
            return (CW, *map(readonly, probe_operands(CW, True)))
        CW, lead, start = self._cached("exact centroids", centroids, rotated)
        assign = np.empty(len(X), np.int64)
        codes, factors = self._empty_codes(len(X))
        rotated_rows = np.empty((min(len(X), ENCODE_CHUNK), self._w_exact.shape[1]), np.float32)  # reused
        for a in range(0, len(X), ENCODE_CHUNK):
            b = min(len(X), a + ENCODE_CHUNK)
            R = matmul(X[a:b], self._w_exact, out=rotated_rows[:b - a])
            assign[a:b], tail = nearest_residuals(R, CW, lead, start, self.tail_dim)
            self._encode_rotated(R[:, :self.tail_dim], tail, codes[a:b], factors[a:b])
        return assign, codes, factors

    def _empty_codes(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((n, self.code_size), np.uint8), np.zeros((n, self.n_factors), np.float32)

    def _encode_rotated(self, O, tail, codes, factors) -> None:
        """CAQ codes and factors of rotated residuals: O their coded dimensions, ``tail`` the
        squared norm of the rest."""
        words = codes.view(np.uint64)
        for s, ((start, length, bits), w) in enumerate(zip(self.segments, self._seg_word)):
            seg_codes, norms, rescale = caq_encode(O[:, start:start + length], bits, self.rounds)  # a view: no copy
            words[:, w:w + bits * length // 64] = pack_planes(seg_codes, bits)
            factors[:, 2 * s], factors[:, 2 * s + 1] = norms, rescale
        if self.tail_dim < self.padded_dim:
            factors[:, -1] = np.sqrt(np.maximum(tail, 0))

    def segment_codes(self, codes: np.ndarray) -> list[np.ndarray]:
        """The integer CAQ codes (n, L_s) of every non-zero segment, unpacked from the planes."""
        words = np.ascontiguousarray(codes).view(np.uint64)
        return [unpack_planes(words[:, w:w + bits * length // 64], bits, length)
                for (_, length, bits), w in zip(self.segments, self._seg_word)]

    def decode(self, codes, factors, centroids, assign):
        self._check_trained("decode")
        O = np.zeros((len(codes), self.tail_dim), np.float32)
        for s, ((start, length, bits), c) in enumerate(zip(self.segments, self.segment_codes(codes))):
            O[:, start:start + length] = reconstruct(c, bits, factors[:, 2 * s], factors[:, 2 * s + 1])
        return centroids[assign] + O @ self.transform_[:, :self.tail_dim].T

    def estimate(self, Q, centroid, codes, factors) -> np.ndarray:
        """Exact-arithmetic scores (nq, n) of the rows of one list around ``centroid``: the
        float64 reference of what stage 2 of the scan computes (squared L2, or -IP)."""
        self._check_trained("estimate scores")
        Qr = self.rotate(Q).astype(np.float64)
        c = self.rotate(centroid[None])[0].astype(np.float64)
        Qt = Qr - c if self.l2_form else Qr
        out = np.zeros((len(Q), len(codes)))
        for s, ((start, length, bits), seg) in enumerate(zip(self.segments, self.segment_codes(codes))):
            q = Qt[:, start:start + length]
            est = (grid_vectors(seg, bits).astype(np.float64) @ q.T).T * factors[:, 2 * s + 1]
            norm2 = factors[:, 2 * s].astype(np.float64) ** 2
            out += (norm2 + (q * q).sum(1)[:, None] - 2 * est) if self.l2_form else -est
        if self.l2_form:
            tail = Qt[:, self.tail_dim:]
            out += (tail * tail).sum(1)[:, None]
            if self.tail_dim < self.padded_dim:
                out += factors[:, -1].astype(np.float64) ** 2
        else:
            out -= (Qr @ c)[:, None]
        return out / 2 - 1 if self.metric == "cosine" else out

    # --- search ----------------------------------------------------------------------------
    def _centroid_arrays(self, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the rotated centroids, their operands as `kernels.probe` reads them: lead, start)."""
        def make():
            CW = readonly(np.ascontiguousarray(self.rotate(centroids)))
            return (CW, *map(readonly, probe_operands(CW, self.metric == "l2")))
        return self._cached("centroids", centroids, make)

    def _raw_centroids(self, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the centroids, their starting sums) for `kernels.probe.nearest_centroids_raw`."""
        return self._cached("raw centroids", centroids, lambda: (
            readonly(np.ascontiguousarray(centroids, np.float32)),
            readonly(probe_operands(centroids, self.metric == "l2")[1])))

    def _rotated_centroids(self, centroids: np.ndarray) -> np.ndarray:
        return self._centroid_arrays(centroids)[0]

    def _packed(self, lists, CW):
        """(offsets, block offsets, planes, lanes, bounds, exact, codes): the lists' arrays as the
        scan reads them. Per FastScan block of 32 rows: the leading planes of every segment, lane by
        lane the stage-1 rescale and spread of every segment and K1, and stage 0's ||o_s|| and tail
        norm apart (read only when it runs); per row, stage 2's rescale and Kd of every segment,
        read beside its code. Derived from the stored codes and factors (`kernels.scan.fast_terms`),
        not stored. Apart, a block's stage-1 bytes are 4.5 KB, not 6.1 (fashion-mnist SAQ4)."""
        def make():
            S = len(self.segments)
            offsets = readonly(lists.offsets)
            codes, factors = readonly(lists.codes), readonly(lists.factors)
            block_offsets, planes = pack_blocks(offsets, np.asarray(codes)[:, self._fast_bytes])
            rescale_p, spread, K1, Kd = fast_terms(offsets, codes, factors, CW, self._rotated_origin,
                                                   *self._scan_layout[:4], self._scan_layout[5], self.l2_form)
            tail = factors[:, -1:] if self.tail_dim < self.padded_dim else np.zeros((lists.ntotal, 1), np.float32)
            lanes = pack_blocks(offsets, np.hstack([rescale_p, spread, K1[:, None]]))[1]
            bounds = pack_blocks(offsets, np.hstack([factors[:, 0:2 * S:2], tail]))[1]
            exact = np.stack([factors[:, 1:2 * S:2], Kd], axis=2).reshape(lists.ntotal, 2 * S)
            return offsets, readonly(block_offsets), readonly(planes), readonly(lanes), readonly(bounds), \
                readonly(exact), codes
        return self._cached("packed", lists, make)

    def _sigma_maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(every M_s row-major one after another, their offsets, every m_s one after another) with
        sigma_s(q)^2 = ||(qW)_s M_s - m_s||^2 for each non-zero segment s (eq. 20).

        (qW)_s = q P_s R_s for the segment's PCA columns P_s and rotation R_s, so
        M_s = (P_s^T W_s)^T diag(sqrt(var_s)) undoes R_s from the already rotated query: sum L_s^2
        multiply-adds per query instead of a second dim x dim GEMM.
        """
        def make():
            pca = np.zeros((self.dim, self.padded_dim), np.float32)
            pca[:, :self.dim] = self.components_
            maps, means = [], []
            for start, length, _ in self.segments:
                cols = slice(start, start + length)
                scale = np.sqrt(self.variance_[cols])
                maps.append(((pca[:, cols].T @ self.transform_[:, cols]).T * scale).ravel())
                means.append((self.mean_ @ pca[:, cols]) * scale)
            offsets = np.concatenate([[0], np.cumsum([len(M) for M in maps])]).astype(np.int64)
            return tuple(readonly(np.ascontiguousarray(a)) for a in (
                np.concatenate(maps).astype(np.float32), offsets, np.concatenate(means).astype(np.float32)))
        return self._cached("sigma", self.transform_, make)

    def variance_bounds(self, QW: np.ndarray, m: float) -> np.ndarray:
        """m * sigma_s(q) per query and non-zero segment from the rotated queries QW (eq. 20):
        sigma_s^2 = sum q_i^2 var_i over the PCA-projected query, as the official code does. A
        single segment has no stage 0 (docs/algorithms.md §7.4). A few queries take one numba call, batches BLAS.

        Cosine has none either: the bound takes <o, x> as centred, which a list's residuals are
        around a k-means mean, but not around a spherical k-means centroid of unit norm, where
        the L2 form's bound dropped true neighbours (pydocs-256-angular, m=4: recall 0.87 to 0.69)."""
        S = len(self._seg_arrays[0])
        if S <= 1 or not math.isfinite(m) or self.metric == "cosine":
            return self._unbounded if len(QW) == 1 else np.full((len(QW), S), NO_BOUND, np.float32)
        seg_dim, seg_len, _ = self._seg_arrays
        maps, offsets, means = self._sigma_maps()
        if len(QW) <= SMALL_ROWS:
            return segment_sigmas(QW, seg_dim, seg_len, maps, offsets, means, np.float32(m))
        sigma = np.empty((len(QW), S), np.float32)
        for s, (a, length) in enumerate(zip(seg_dim, seg_len)):
            y = QW[:, a:a + length] @ maps[offsets[s]:offsets[s + 1]].reshape(length, length)
            y -= means[a:a + length]
            sigma[:, s] = np.einsum("ij,ij->i", y, y)
        return np.minimum(m * np.sqrt(sigma), NO_BOUND).astype(np.float32)

    def search(self, plan, centroids, lists, probe, k, live):
        CW, lead, start = self._centroid_arrays(centroids)
        packed, prune = self._packed(lists, CW), bool(plan.params["prune"])
        if plan.nq == 1 and "saq" not in plan.cache.entries and math.isinf(plan.params["m"]) \
                and plan.given(probe) is None:
            # a single query's first segment: rotation, probe and scan in one call, not three with
            # Python between them; the next segments find the rotated query and lists in the plan.
            # CAQ too, whose random basis prunes little of the probe, which is still exact there
            QW, probes, scores, rows = saq_query_one(plan.queries, self._w_half, CW, lead, start,
                                                     *self._probe_args(probe),
                                                     self._rotated_origin, self._unbounded, *packed,
                                                     *self._scan_layout, prune, live, k)
            entries = plan.cache.entries
            entries["saq"], entries["saq lists", probe.key] = (QW, self._unbounded), probes
        else:
            QW, msig = plan.cache.get("saq", lambda: self._prepare(plan))
            probes = self.probed(plan, centroids, probe)
            scan = saq_scan_one if plan.nq == 1 else saq_scan
            scores, rows = scan(QW, CW, self._rotated_origin, msig, probes, *packed, *self._scan_layout, prune,
                                live, k)
        if self.metric == "cosine":
            unit_l2_as_ip(scores, rows)
        return scores, rows

    def search_one(self, centroids, lists, probe, k):
        """One query's answers in one call (`kernels.scan.saq_answer_one`), as the scan rotates,
        probes and scans a single query in one call anyway; a filter's probe takes the plan path."""
        if probe.keep is not None:
            return None

        def make():
            CW, lead, start = self._centroid_arrays(centroids)
            args = (readonly(lists.ids), self.metric == "cosine", self._w_half, CW, lead, start, probe.n, ALL_LISTS,
                    self._rotated_origin, self._unbounded, *self._packed(lists, CW), *self._scan_layout,
                    bool(self._default_params["prune"]))
            return lambda Q, live: saq_answer_one(Q, *args, live, k)
        return self._cached(("search one", probe.n, k), lists, make)

    def search_one_parts(self, centroids, lists, probe, k, Q, live):
        """The first lists scanned in the call that rotates and probes (`kernels.scan.saq_query_one`),
        each other one with that rotated query and those lists (`saq_scan_one`)."""
        X = self._query_rows(probe, Q)
        if X is None:
            return None
        CW, lead, start = self._centroid_arrays(centroids)
        prune = bool(self._default_params["prune"])
        QW, probes, scores, rows = saq_query_one(X, self._w_half, CW, lead, start, probe.n, ALL_LISTS,
                                                 self._rotated_origin, self._unbounded,
                                                 *self._packed(lists[0], CW), *self._scan_layout, prune, live[0], k)
        found = [(scores, rows)]
        for more, bits in zip(lists[1:], live[1:]):
            found.append(saq_scan_one(QW, CW, self._rotated_origin, self._unbounded, probes, *self._packed(more, CW),
                                      *self._scan_layout, prune, bits, k))
        if self.metric == "cosine":
            for scores, rows in found:
                unit_l2_as_ip(scores, rows)
        return found

    def _prepare(self, plan):
        """What a search needs of the queries alone: rotated, and their variance bounds."""
        QW = self.rotate(plan.queries)  # C-contiguous and writable from either path
        return QW, self.variance_bounds(QW, float(plan.params["m"]))

    def probed(self, plan, centroids, probe):
        given = plan.given(probe)  # probed once elsewhere (a sharded collection's router)
        if given is not None:
            return given
        return plan.cache.get(("saq lists", probe.key), lambda: self._probe(plan, probe, centroids))

    @property
    def _probes_itself(self) -> bool:
        """Whether lists are found in the codec's basis: after a PCA (see `_probe`)."""
        return self.mean_ is not None

    def _probe(self, plan, probe, centroids):
        """The lists to scan. After a PCA they are found in the codec's basis, which the rotated
        queries are in already: there the leading 64 dimensions rule out most centroids, for L2
        and for inner product alike (`kernels.probe`; on fashion-mnist half the time of faiss's
        BLAS search over the raw centroids). A few queries not rotated yet (a filtered scan over
        the raw vectors needs only their lists) rotate just those 64. Inner-product batches go
        through faiss's BLAS: the leading dimensions of text embeddings rule out few centroids
        (pydocs-256-angular, 256 lists: 13-28 us a query against 3.5-13). CAQ's basis is a random
        rotation, where the leading dimensions hold no more than any others: it goes through the
        probe, except a single query's, found in the one call that scans it (`search`): on
        fashion-mnist a CAQ4 query took 93 us that way against 120 through the probe."""
        if not self._probes_itself or (plan.nq > SMALL_ROWS and probe.metric != "l2"):
            return plan.lists(probe)
        CW, lead, start = self._centroid_arrays(centroids)
        if plan.nq <= SMALL_ROWS and "saq" not in plan.cache.entries:
            C, raw_start = self._raw_centroids(centroids)
            return nearest_centroids_raw(plan.queries, self._w_lead, C, lead, raw_start, *self._probe_args(probe))
        QW = plan.cache.get("saq", lambda: self._prepare(plan))[0]
        nearest = nearest_centroids if plan.nq <= SMALL_ROWS else nearest_centroids_batch
        return nearest(QW, CW, lead, start, *self._probe_args(probe))

    @staticmethod
    def _probe_args(probe) -> tuple[int, np.ndarray]:
        """(n, keep) for `kernels.probe`: a filter's probe asks for its budget of kept lists
        directly, where a search over all centroids finds its n nearest (wide) and drops the
        unkept: on fashion-mnist a label filter's single query probed 150-300 lists that way."""
        if probe.keep is None:
            return probe.n, ALL_LISTS
        return probe.budget, probe.keep

    # --- persistence -----------------------------------------------------------------------
    def state(self):
        meta = {"bits": self.bits, "rounds": self.rounds, "plan": self.plan_,
                "modelled_error": self.modelled_error_}
        arrays = {"transform": self.transform_}
        if self.origin_ is not None and self.origin_ is not self.mean_:  # CAQ's; SAQ's is the PCA mean
            arrays["origin"] = self.origin_
        if self.mean_ is not None:
            arrays.update(mean=self.mean_, components=self.components_, variance=self.variance_)
        return meta, arrays

    def load_state(self, meta, arrays):
        self.bits, self.rounds, self.modelled_error_ = meta["bits"], meta["rounds"], meta["modelled_error"]
        self.mean_, self.components_, self.variance_ = (arrays.get(n) for n in ("mean", "components", "variance"))
        # SAQ's origin is its PCA mean; a CAQ model saved before the centroid terms has none (r = 0)
        self.origin_ = arrays.get("origin", self.mean_)
        self._set_model(meta["plan"], arrays["transform"])
        return self

