"""Uncompressed float32 vectors: the exact baseline (``Flat``, ``IVF{nlist},Flat``)."""

from __future__ import annotations

import numpy as np

from ..kernels.config import readonly
from ..kernels.flat import ivf_flat_scan, ivf_flat_scan_one
from .base import Codec


class FlatCodec(Codec):
    """Codes are the float32 vectors' bytes; for L2 the factor is ||x||^2 (saves a dot per scan)."""

    serial_queries = 1  # one query's scan is a few microseconds: no thread team to cap around it

    @property
    def spec(self) -> str:
        return "Flat"

    @property
    def code_size(self) -> int:
        return 4 * self.dim

    @property
    def n_factors(self) -> int:
        return 1 if self.metric == "l2" else 0

    @property
    def alpha(self) -> np.float32:
        return np.float32(-2.0 if self.metric == "l2" else -1.0)

    def encode(self, X, centroids, assign):
        X = np.ascontiguousarray(X, dtype=np.float32)
        factors = np.einsum("ij,ij->i", X, X)[:, None] if self.metric == "l2" else np.zeros((len(X), 0), np.float32)
        return X.view(np.uint8).reshape(len(X), -1), factors.astype(np.float32)

    def decode(self, codes, factors, centroids, assign):
        return np.ascontiguousarray(codes).view(np.float32).reshape(len(codes), self.dim)

    def search(self, plan, centroids, lists, probe, k, live):
        def make():
            vectors = np.ascontiguousarray(lists.codes).view(np.float32).reshape(-1, self.dim)
            norms = lists.factors[:, 0] if self.metric == "l2" else np.zeros(0, np.float32)
            return readonly(lists.offsets), readonly(vectors), readonly(np.ascontiguousarray(norms))
        offsets, vectors, norms = self._cached("rows", lists, make)
        scan = ivf_flat_scan_one if plan.nq == 1 else ivf_flat_scan
        return scan(plan.queries, plan.lists(probe), offsets, vectors, norms, self.alpha, live, k)
