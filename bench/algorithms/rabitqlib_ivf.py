"""rabitqlib's ``IvfIndex`` (Extended RaBitQ, RaBitQ-Library) built on annvq's coarse centroids and
list assignments (its ``build`` takes both), so the two scan exactly the same lists."""

from __future__ import annotations

import numpy as np
import rabitqlib
from annvq.ivf import nearest_lists

from .base import BaseANN, as_float32, check_metric, ivf_metric, prepared, shared_centroids, threads

#: per-vector float factors of RaBitQ-Library's IVF (docs/algorithms.md §5.3): 3 for the 1-bit
#: estimate (F_add, F_rescale, F_err), 2 more for the extended code when nbits > 1
ONE_BIT_FACTORS, EX_FACTORS = 3, 2
#: its default FhtKac rotation refuses fewer dimensions; zero columns change no distance
MIN_DIM = 64


def pad_columns(X: np.ndarray, dim: int) -> np.ndarray:
    return X if X.shape[1] >= dim else as_float32(np.pad(X, ((0, 0), (0, dim - X.shape[1]))))


def as_ids(ids: np.ndarray) -> np.ndarray:
    """rabitqlib's uint32 ids as int64, its missing-result marker 0xFFFFFFFF as -1."""
    return ids.view(np.int32).astype(np.int64)


class RabitqlibIVF(BaseANN):
    """``rabitqlib.IvfIndex(dim, n, nlist, nbits)``; query argument ``nprobe``."""

    name = "rabitqlib-ivf"

    def __init__(self, metric: str, nlist: int, nbits: int):
        self.metric = check_metric(metric)
        self.nlist, self.nbits = int(nlist), int(nbits)
        self.nprobe = 1

    def _prepare(self, X) -> np.ndarray:
        return pad_columns(prepared(X, self.metric), MIN_DIM)

    def prepare_fit(self, X: np.ndarray) -> None:
        shared_centroids(prepared(X, self.metric), self.nlist, ivf_metric(self.metric))

    def fit(self, X: np.ndarray) -> None:
        X = prepared(X, self.metric)
        centroids = shared_centroids(X, self.nlist, ivf_metric(self.metric))
        assign = nearest_lists(X, centroids, ivf_metric(self.metric), 1)[:, 0]
        X, centroids = pad_columns(X, MIN_DIM), pad_columns(centroids, MIN_DIM)
        self.dim = X.shape[1]
        self.index = rabitqlib.IvfIndex(dim=self.dim, max_elements=len(X), num_clusters=self.nlist,
                                        nbits=self.nbits, metric=ivf_metric(self.metric))
        self.index.build(X, centroids, assign.astype(np.uint32), num_threads=threads(),
                         fast_quantization=False)

    def set_query_arguments(self, nprobe) -> None:
        self.nprobe = min(int(nprobe), self.nlist)

    def query(self, q: np.ndarray, n: int) -> np.ndarray:
        ids, _ = self.index.search(self._prepare(q[None]), k=n, nprobe=self.nprobe, num_threads=1)
        return as_ids(ids)[0]

    def batch_query(self, X: np.ndarray, n: int) -> None:
        ids, _ = self.index.search(self._prepare(X), k=n, nprobe=self.nprobe, num_threads=threads())
        self.res = as_ids(ids)

    def bytes_per_vector(self) -> float:
        # docs/algorithms.md §5.3: D_pad*B/8 code bytes plus the float factors (ids excluded)
        d_pad = -(-self.dim // 64) * 64
        factors = ONE_BIT_FACTORS + (EX_FACTORS if self.nbits > 1 else 0)
        return float(d_pad * self.nbits / 8 + 4 * factors)

    def done(self) -> None:
        self.index = None

    def build_label(self) -> str:
        return f"IVF{self.nlist}, nbits={self.nbits}"

    def query_label(self) -> str:
        return f"nprobe={self.nprobe}"
