"""Residual product quantization: ``PQ{M}x8`` (float ADC) and ``PQ{M}x4fs`` (4-bit fast scan).

The residual x - c to the list centroid is split into M sub-vectors, each replaced by the index
of its nearest of 2^nbits sub-centroids (docs/algorithms.md §3.1). An ``OPQ{M}`` spec prefix learns an
orthogonal rotation R applied to residuals and queries; distances are unchanged by R.
"""

from __future__ import annotations

import re

import faiss
import numpy as np

from ..errors import InvalidSpecError, InvalidVectorsError
from ..kernels.bits import pack_bits, unpack_bits
from ..kernels.config import readonly
from ..kernels.fastscan import pack_blocks
from ..kernels.lut import pq4_fastscan, pq4_fastscan_one, pq_adc_scan, pq_codes
from ..linalg import matmul
from .base import Codec

#: k-means sample per sub-quantizer centroid (faiss's max_points_per_centroid)
SAMPLE_PER_CENTROID = 256
KMEANS_ITERATIONS = 25
#: OPQ alternations (faiss's default is 50; the rotation has mostly converged by 20)
OPQ_ITERATIONS = 20
#: the per-list l2 table (nlist x M x ksub float32) is precomputed up to this size
MAX_TERM_BYTES = 1 << 29


class PQCodec(Codec):
    """Codes: M bytes (x8) or M/2 bytes of nibble pairs (x4fs); no factors; no per-vector constant."""

    transforms = ("OPQ",)

    def __init__(self, dim: int, metric: str, M: int, nbits: int, *, opq: int | None = None, seed: int = 0):
        super().__init__(dim, metric, seed=seed)
        self.M, self.nbits, self.opq = M, nbits, opq
        self.codebooks = None  # (M, 2^nbits, dim / M)
        self.rotation = None  # (dim, dim) applied as x @ rotation.T, or None

    @classmethod
    def _from_match(cls, match, dim, metric, *, transform, seed):
        name = match.group(0)
        M = int(match.group(1))
        nbits = int(match.group(2) or 8)
        fast = match.group(3) is not None
        if (nbits, fast) not in ((8, False), (4, True)):
            raise InvalidSpecError(f"{name}: PQ supports PQ{{M}}x8 and PQ{{M}}x4fs only.")
        if M < 1 or dim % M:
            raise InvalidSpecError(
                f"{name}: the number of sub-quantizers M={M} must divide the dimension {dim}."
            )
        if fast and M % 2:
            raise InvalidSpecError(f"{name}: fast scan packs two sub-quantizers per byte, so M={M} must be even.")
        opq = None
        if transform is not None:
            t = re.fullmatch(r"OPQ(\d+)", transform)
            if t is None:
                raise InvalidSpecError(
                    f"{transform}: only OPQ{{M}} without dimension reduction is supported with {name}."
                )
            opq = int(t.group(1))
            if opq < 1 or dim % opq:
                raise InvalidSpecError(f"{transform}: M={opq} must divide the dimension {dim}.")
        return cls(dim, metric, M, nbits, opq=opq, seed=seed)

    # --- description -----------------------------------------------------------------------
    @property
    def spec(self) -> str:
        return f"PQ{self.M}x{self.nbits}" + ("fs" if self.fast else "")

    @property
    def serial_queries(self) -> int:
        """FastScan scans one query on its thread (`lut.pq4_fastscan_one`), so no thread cap."""
        return 1 if self.fast else 0

    @property
    def fast(self) -> bool:
        return self.nbits == 4

    @property
    def ksub(self) -> int:
        return 1 << self.nbits

    @property
    def dsub(self) -> int:
        return self.dim // self.M

    @property
    def code_size(self) -> int:
        return self.M * self.nbits // 8

    @property
    def is_trained(self) -> bool:
        return self.codebooks is not None

    # --- training --------------------------------------------------------------------------
    def _rotate(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        return X if self.rotation is None else np.ascontiguousarray(matmul(X, self.rotation.T))

    def fit(self, X, centroids, nearest):
        if len(X) < self.ksub:
            raise InvalidVectorsError(
                f"Training {self.spec} needs at least {self.ksub} vectors (one per sub-centroid); got {len(X)}."
            )
        rng = np.random.default_rng(self.seed)
        n_sample = min(len(X), SAMPLE_PER_CENTROID * self.ksub)
        rows = np.sort(rng.choice(len(X), n_sample, replace=False)) if n_sample < len(X) else slice(None)
        sample = X[rows]
        R = np.ascontiguousarray(sample - centroids[nearest(sample)], dtype=np.float32)
        self.rotation = None
        if self.opq is not None:
            opq = faiss.OPQMatrix(self.dim, self.opq)
            opq.niter, opq.niter_pq_0 = OPQ_ITERATIONS, OPQ_ITERATIONS
            # learn the rotation for the codebook size actually used (16 centroids for fast scan)
            pq = faiss.ProductQuantizer(self.dim, self.opq, self.nbits)
            pq.cp.min_points_per_centroid = 1
            opq.pq = pq
            opq.train(R)
            self.rotation = faiss.vector_to_array(opq.A).reshape(self.dim, self.dim).astype(np.float32)
            R = self._rotate(R)
        books = np.empty((self.M, self.ksub, self.dsub), np.float32)
        for m in range(self.M):  # one k-means per sub-space (training only; BLAS/OpenMP inside)
            sub = np.ascontiguousarray(R[:, m * self.dsub:(m + 1) * self.dsub])
            km = faiss.Kmeans(self.dsub, self.ksub, niter=KMEANS_ITERATIONS, seed=self.seed + m,
                              max_points_per_centroid=SAMPLE_PER_CENTROID, min_points_per_centroid=1)
            km.train(sub)
            books[m] = km.centroids
        self.codebooks = books
        self._cache = {}
        return self

    # --- encoding --------------------------------------------------------------------------
    def assign_codes(self, X, centroids, assign) -> np.ndarray:
        """(n, M) sub-centroid indices of the rotated residuals (x - c) A^T = x A^T - c A^T."""
        self._check_trained("encode")
        # read-only, whichever the caller's arrays are: one specialisation, the one warmup compiled
        books_t = np.ascontiguousarray(self.codebooks.transpose(0, 2, 1))
        return pq_codes(readonly(self._rotate(X)), readonly(self._rotate(centroids)),
                        readonly(np.asarray(assign, np.int64)), readonly(books_t))

    def encode(self, X, centroids, assign):
        codes = self.assign_codes(X, centroids, assign)
        if self.fast:  # sub-quantizer 2j in the low nibble, 2j+1 in the high one
            codes = pack_bits(codes, 4)
        return codes, np.zeros((len(codes), 0), np.float32)

    def unpack(self, codes: np.ndarray) -> np.ndarray:
        """(n, M) sub-centroid indices from stored codes."""
        codes = np.asarray(codes)
        return unpack_bits(codes, self.M, 4).astype(np.uint8) if self.fast else codes

    def decode(self, codes, factors, centroids, assign):
        self._check_trained("decode")
        idx = self.unpack(codes).astype(np.int64)
        R = self.codebooks[np.arange(self.M), idx].reshape(len(idx), self.dim)
        if self.rotation is not None:
            R = R @ self.rotation
        return (R + centroids[assign]).astype(np.float32)

    # --- search ----------------------------------------------------------------------------
    def _model(self, centroids):
        """(rotated centroids, codebooks as (M, dsub, ksub), per-list l2 table or an empty one),
        cached per centroid array."""
        def make():
            C = self._rotate(centroids)
            nlist = len(C)
            if self.metric != "l2" or nlist * self.M * self.ksub * 4 > MAX_TERM_BYTES:
                term = np.zeros((0, self.M, self.ksub), np.float32)
            else:  # T[l, m, j] = ||C_mj||^2 + 2 <c_l,m, C_mj>
                Cs = C.reshape(nlist, self.M, self.dsub)
                term = 2 * np.einsum("lmd,mjd->lmj", Cs, self.codebooks, optimize=True)
                term += np.einsum("mjd,mjd->mj", self.codebooks, self.codebooks)[None]
            books_t = np.ascontiguousarray(self.codebooks.transpose(0, 2, 1))
            return readonly(C), readonly(books_t), readonly(np.ascontiguousarray(term, dtype=np.float32))
        return self._cached("model", centroids, make)

    def _packed(self, lists):
        """(block offsets, packed blocks) of the lists' codes for the fast scan."""
        def make():
            block_offsets, packed = pack_blocks(readonly(lists.offsets), readonly(lists.codes))
            return readonly(block_offsets), readonly(packed)
        return self._cached("packed", lists, make)

    def search(self, plan, centroids, lists, probe, k, live):
        probes = plan.lists(probe)
        C, books_t, term = self._model(centroids)
        Qr = plan.cache.get("pq.rotated", lambda: readonly(self._rotate(plan.queries)))
        is_l2 = self.metric == "l2"
        if self.fast:
            block_offsets, packed = self._packed(lists)
            scan = pq4_fastscan_one if plan.nq == 1 else pq4_fastscan
            return scan(Qr, C, probes, readonly(lists.offsets), block_offsets, packed, books_t, term, is_l2,
                        live, k)
        return pq_adc_scan(Qr, C, probes, readonly(lists.offsets), readonly(lists.codes),
                           books_t, term, is_l2, live, k)

    # --- persistence -----------------------------------------------------------------------
    def state(self):
        arrays = {"codebooks": self.codebooks}
        if self.rotation is not None:
            arrays["rotation"] = self.rotation
        return {"M": self.M, "nbits": self.nbits, "opq": self.opq}, arrays

    def load_state(self, meta, arrays):
        self.codebooks = np.ascontiguousarray(arrays["codebooks"], dtype=np.float32)
        self.rotation = arrays.get("rotation")
        self._cache = {}
        return self
