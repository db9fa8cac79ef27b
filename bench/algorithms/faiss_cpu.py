"""faiss-cpu peers: any IVF factory string (``IVF1024,Flat``, ``IVF1024,PQ98``,
``IVF1024,PQ196x4fs[,RFlat]``, ``RR784,IVF1024,RaBitQ4``) on annvq's coarse centroids, and HNSW."""

from __future__ import annotations

import faiss
import numpy as np

from .base import BaseANN, as_float32, check_metric, ivf_metric, prepared, shared_centroids


def faiss_metric(metric: str):
    return faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT


def set_coarse_centroids(index, X: np.ndarray, metric: str) -> None:
    """Load annvq's centroids into the IVF quantizer of ``index`` before ``index.train``.

    faiss skips coarse training when the quantizer already holds nlist trained centroids. A
    leading transform (``RR``) is trained first and applied to the centroids: a rotation maps
    k-means centroids to the k-means centroids of the rotated data.
    """
    ivf = faiss.extract_index_ivf(index)
    centroids = shared_centroids(X, ivf.nlist, ivf_metric(metric))
    if isinstance(index, faiss.IndexPreTransform):
        for i in range(index.chain.size()):
            transform = index.chain.at(i)
            if not transform.is_trained:
                transform.train(X)
            centroids = transform.apply(centroids)
    ivf.quantizer.reset()
    ivf.quantizer.add(as_float32(centroids))


class FaissIndex(BaseANN):
    """Searching is the same for every faiss index: ``index.search`` on prepared vectors."""

    def query(self, q: np.ndarray, n: int) -> np.ndarray:
        _, ids = self.index.search(prepared(q[None], self.metric), n)
        return ids[0]

    def batch_query(self, X: np.ndarray, n: int) -> None:
        _, self.res = self.index.search(prepared(X, self.metric), n)


class FaissIVF(FaissIndex):
    """``faiss.index_factory(d, factory)`` with IVF; query arguments ``nprobe`` [, ``k_factor``]
    (the refine step's candidates per result, for factory strings ending in ``RFlat``)."""

    name = "faiss-ivf"

    def __init__(self, metric: str, factory: str):
        self.metric = check_metric(metric)
        self.factory = factory
        self.nprobe = 1
        self.k_factor = None

    def prepare_fit(self, X: np.ndarray) -> None:
        index = faiss.index_factory(X.shape[1], self.factory, faiss_metric(self.metric))
        shared_centroids(prepared(X, self.metric), faiss.extract_index_ivf(index).nlist, ivf_metric(self.metric))

    def fit(self, X: np.ndarray) -> None:
        X = prepared(X, self.metric)
        self.index = faiss.index_factory(X.shape[1], self.factory, faiss_metric(self.metric))
        set_coarse_centroids(self.index, X, self.metric)
        self.index.train(X)
        self.index.add(X)
        self.ivf = faiss.extract_index_ivf(self.index)
        self.refine = self.index if isinstance(self.index, faiss.IndexRefine) else None

    def set_query_arguments(self, nprobe, k_factor=None) -> None:
        self.nprobe = min(int(nprobe), self.ivf.nlist)
        self.ivf.nprobe = self.nprobe
        if k_factor is not None and self.refine is not None:
            self.k_factor = int(k_factor)
            self.refine.k_factor = float(self.k_factor)

    def bytes_per_vector(self) -> float:
        refine = self.index.d * 4 if self.refine is not None else 0
        return float(self.ivf.code_size + refine)

    def done(self) -> None:
        self.index = self.ivf = self.refine = None

    def build_label(self) -> str:
        return self.factory

    def query_label(self) -> str:
        return f"nprobe={self.nprobe}" + ("" if self.k_factor is None else f", k_factor={self.k_factor}")


class FaissHNSW(FaissIndex):
    """``faiss.IndexHNSWFlat(d, M)``; query argument ``efSearch``."""

    name = "faiss-hnsw"

    def __init__(self, metric: str, M: int = 32, ef_construction: int = 40):
        self.metric = check_metric(metric)
        self.M, self.ef_construction = int(M), int(ef_construction)
        self.ef = 16

    def fit(self, X: np.ndarray) -> None:
        X = prepared(X, self.metric)
        self.index = faiss.IndexHNSWFlat(X.shape[1], self.M, faiss_metric(self.metric))
        self.index.hnsw.efConstruction = self.ef_construction
        self.index.add(X)

    def set_query_arguments(self, ef) -> None:
        self.ef = int(ef)
        self.index.hnsw.efSearch = self.ef

    def bytes_per_vector(self) -> float:
        # raw vectors + every stored neighbour slot (4 B each), all levels
        links = faiss.vector_to_array(self.index.hnsw.neighbors).size * 4
        return float(self.index.d * 4 + links / max(self.index.ntotal, 1))

    def done(self) -> None:
        self.index = None

    def build_label(self) -> str:
        return f"HNSW{self.M},Flat, efConstruction={self.ef_construction}"

    def query_label(self) -> str:
        return f"efSearch={self.ef}"
