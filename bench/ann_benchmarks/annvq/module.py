"""annvq for the upstream ann-benchmarks runner (https://github.com/erikbern/ann-benchmarks).

This folder drops into ``ann_benchmarks/algorithms/annvq/`` of an upstream checkout unchanged:
``module.py`` (this file), ``config.yml`` (the ``annvq-saq`` and ``annvq-pq`` entries) and
``Dockerfile`` (the ``ann-benchmarks-annvq`` image). It imports nothing from annvq's ``bench/``
package; it mirrors ``bench/algorithms/annvq_ivf.py`` on upstream's ``BaseANN``.

Build argument: an annvq index spec (``IVF1024,SAQ4``, ``IVF1024,PQ196x4fs``,
``IVF1024,PQ196x4fs,Rerank``); query arguments: ``nprobe`` and optionally ``rerank``.
"""

import annvq
import numpy

from ..base.module import BaseANN

#: ann-benchmarks' metric names -> annvq's
METRICS = {"euclidean": "l2", "angular": "cosine"}

#: queries used to compile and warm the search path inside ``fit`` (numba JIT), so that no
#: compilation lands inside a timed query
WARMUP_QUERIES = 8


def _f32(X):
    return numpy.ascontiguousarray(X, dtype=numpy.float32)


class AnnvqIVF(BaseANN):
    """``annvq.Index(dim, spec, metric)``, trained and filled with the train set in ``fit``."""

    def __init__(self, metric, spec):
        if metric not in METRICS:
            raise ValueError(f"annvq: metric must be one of {sorted(METRICS)}; got {metric!r}")
        self._metric = metric
        self._spec = str(spec)
        self._nprobe = 1
        self._rerank = None
        self.index = None
        self.name = f"annvq({self._spec})"

    def fit(self, X):
        X = _f32(X)
        self.index = annvq.Index(X.shape[1], self._spec, metric=METRICS[self._metric])
        self.index.train(X).add(X)
        warm = X[:WARMUP_QUERIES]
        self.index.search(warm, 10, nprobe=1)      # batch path
        self.index.search(warm[:1], 10, nprobe=1)  # single-query path

    def set_query_arguments(self, nprobe, rerank=None):
        self._nprobe = max(1, min(int(nprobe), self.index.nlist or 1))
        self._rerank = None if rerank is None else int(rerank)

    def _search(self, Q, n):
        _, ids = self.index.search(_f32(Q), n, nprobe=self._nprobe, rerank=self._rerank)
        return ids

    def query(self, v, n):
        ids = self._search(v[None], n)[0]
        return ids[ids >= 0]

    def batch_query(self, X, n):
        self.res = self._search(X, n)

    def get_batch_results(self):
        return [row[row >= 0] for row in self.res]

    def get_additional(self):
        if self.index is None:
            return {}
        kept = self.index.dim * 4 if self.index.store_vectors else 0
        return {"bytes_per_vector": float(self.index.bytes_per_vector + kept)}

    def done(self):
        self.index = None

    def __str__(self):
        rerank = "" if self._rerank is None else f", rerank={self._rerank}"
        return f"annvq({self._spec}, nprobe={self._nprobe}{rerank})"
