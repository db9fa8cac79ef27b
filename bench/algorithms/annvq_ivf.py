"""annvq itself, for any spec string (``IVF1024,Flat``, ``IVF1024,SAQ4``, ``IVF1024,PQ98x4fs,Rerank``)."""

from __future__ import annotations

import annvq
import numpy as np

from .base import METRICS, BaseANN, as_float32, check_metric, ivf_metric, prepared, shared_centroids

#: queries used to compile and warm the search path inside ``fit``
WARMUP_QUERIES = 8


class AnnvqIVF(BaseANN):
    """``annvq.Index(dim, spec, metric)``; query arguments ``nprobe``, optionally ``rerank`` and
    codec knobs as a string (``"m=4"`` turns SAQ's stage 0 on)."""

    name = "annvq"

    def __init__(self, metric: str, spec: str):
        self.metric = check_metric(metric)
        self.spec = spec
        self.nprobe = 1
        self.rerank = None
        self.params = None

    def _centroids(self, X: np.ndarray) -> np.ndarray | None:
        nlist = annvq.parse_spec(self.spec).nlist
        return shared_centroids(prepared(X, self.metric), nlist, ivf_metric(self.metric)) if nlist else None

    def prepare_fit(self, X: np.ndarray) -> None:
        self._centroids(X)

    def fit(self, X: np.ndarray) -> None:
        X = as_float32(X)
        # train() compiles the codec's kernels (codec.warmup); the searches below warm the
        # probing and top-k paths, so no compilation lands inside a timed query.
        self.index = annvq.Index(X.shape[1], self.spec, metric=METRICS[self.metric])
        self.index.train(X, centroids=self._centroids(X)).add(X)
        warm = X[:WARMUP_QUERIES]
        self.index.search(warm, 10, nprobe=1)
        self.index.search(warm[:1], 10, nprobe=1)

    def set_query_arguments(self, nprobe, rerank=None, params=None) -> None:
        self.nprobe = min(int(nprobe), self.index.nlist)
        self.rerank = None if rerank is None else int(rerank)
        self.params = params

    def query(self, q: np.ndarray, n: int) -> np.ndarray:
        _, ids = self.index.search(as_float32(q)[None], n, nprobe=self.nprobe, rerank=self.rerank,
                                   params=self.params)
        return ids[0]

    def batch_query(self, X: np.ndarray, n: int) -> None:
        _, self.res = self.index.search(as_float32(X), n, nprobe=self.nprobe, rerank=self.rerank,
                                        params=self.params)

    def bytes_per_vector(self) -> float:
        kept = self.index.dim * 4 if self.index.store_vectors else 0
        return float(self.index.bytes_per_vector + kept)

    def done(self) -> None:
        self.index = None

    def build_label(self) -> str:
        return self.spec

    def query_label(self) -> str:
        return (f"nprobe={self.nprobe}" + ("" if self.rerank is None else f", rerank={self.rerank}")
                + ("" if self.params is None else f", {self.params}"))
