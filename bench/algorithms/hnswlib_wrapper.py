"""hnswlib peer: an HNSW graph over raw float vectors."""

from __future__ import annotations

import hnswlib
import numpy as np

from .base import BaseANN, as_float32, check_metric, threads

#: hnswlib's space for each ann-benchmarks metric (its "cosine" normalises internally)
SPACES = {"euclidean": "l2", "angular": "cosine"}
#: bytes of the external label hnswlib stores per element (an id, excluded like annvq's ids)
LABEL_BYTES = 8


class HnswLib(BaseANN):
    """``hnswlib.Index(space, dim)`` with ``M`` and ``ef_construction``; query argument ``ef``."""

    name = "hnswlib"

    def __init__(self, metric: str, M: int = 16, ef_construction: int = 200):
        self.metric = check_metric(metric)
        self.M, self.ef_construction = int(M), int(ef_construction)
        self.ef = 10

    def fit(self, X: np.ndarray) -> None:
        X = as_float32(X)
        self.index = hnswlib.Index(space=SPACES[self.metric], dim=X.shape[1])
        self.index.init_index(max_elements=len(X), ef_construction=self.ef_construction, M=self.M,
                              random_seed=100)
        self.index.add_items(X, np.arange(len(X)), num_threads=threads())

    def set_query_arguments(self, ef) -> None:
        self.ef = int(ef)
        self.index.set_ef(self.ef)

    def query(self, q: np.ndarray, n: int) -> np.ndarray:
        labels, _ = self.index.knn_query(as_float32(q)[None], k=n, num_threads=1)
        return labels[0]

    def batch_query(self, X: np.ndarray, n: int) -> None:
        self.res, _ = self.index.knn_query(as_float32(X), k=n, num_threads=threads())

    def bytes_per_vector(self) -> float:
        # the serialised size is the in-memory layout: vectors, level-0 and upper links, labels
        count = max(self.index.get_current_count(), 1)
        return float(self.index.index_file_size() / count - LABEL_BYTES)

    def done(self) -> None:
        self.index = None

    def build_label(self) -> str:
        return f"M={self.M}, efConstruction={self.ef_construction}"

    def query_label(self) -> str:
        return f"ef={self.ef}"
