"""Uncompressed float32 vectors: the exact baseline (``Flat``, ``IVF{nlist},Flat``)."""

from __future__ import annotations

import numpy as np

from ..kernels.config import readonly
from ..kernels.flat import flat_answer_one, ivf_flat_scan, ivf_flat_scan_one
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

    def _rows(self, lists):
        """(offsets, the rows as float32 vectors, their squared norms for L2) as the scans read them."""
        def make():
            vectors = np.ascontiguousarray(lists.codes).view(np.float32).reshape(-1, self.dim)
            norms = lists.factors[:, 0] if self.metric == "l2" else np.zeros(0, np.float32)
            return readonly(lists.offsets), readonly(vectors), readonly(np.ascontiguousarray(norms))
        return self._cached("rows", lists, make)

    def search(self, plan, centroids, lists, probe, k, live):
        scan = ivf_flat_scan_one if plan.nq == 1 else ivf_flat_scan
        return scan(plan.queries, plan.lists(probe), *self._rows(lists), self.alpha, live, k)

    def search_one(self, centroids, lists, probe, k):
        """One query's answers in one call (`kernels.flat.flat_answer_one`), probing as `ivf.Probe`
        probes a few queries; a filter's probe (``keep``) takes the plan path."""
        if probe.keep is not None:
            return None

        def make():
            args = (readonly(lists.ids), self.metric == "cosine", probe.centroids, probe.n, *self._rows(lists),
                    self.alpha)
            return lambda Q, live: flat_answer_one(Q, *args, live, k)
        return self._cached(("search one", probe.n, k), lists, make)

    def search_one_parts(self, centroids, lists, probe, k, Q, live):
        """Probed once as the plan path probes, then `ivf_flat_scan_one` over each lists."""
        X = self._query_rows(probe, Q)
        if X is None:
            return None
        probes = probe(X)
        return [ivf_flat_scan_one(X, probes, *self._rows(rows), self.alpha, bits, k) for rows, bits in zip(lists, live)]
