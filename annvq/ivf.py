"""The coarse quantizer (k-means centroids, assignment, probing) and CSR inverted lists."""

from __future__ import annotations

from dataclasses import dataclass, replace

import faiss
import numpy as np

from .kernels.config import readonly
from .kernels.flat import nearest_rows
from .linalg import SMALL_ROWS

# faiss's own k-means caps its sample at 256 points per centroid; 50 keeps training fast with
# little loss in list quality (the "about 50 x nlist").
SAMPLE_PER_LIST = 50
KMEANS_ITERATIONS = 20


def train_centroids(X: np.ndarray, nlist: int, metric: str, *, seed: int = 0,
                    verbose: bool = False) -> np.ndarray:
    """k-means centroids (nlist, d) from a bounded random sample of X.

    For inner product the centroids are spherical (unit norm), as faiss trains IVF for IP.
    """
    rng = np.random.default_rng(seed)
    n_sample = min(len(X), SAMPLE_PER_LIST * nlist)
    sample = X if n_sample == len(X) else X[np.sort(rng.choice(len(X), n_sample, replace=False))]
    km = faiss.Kmeans(X.shape[1], nlist, niter=KMEANS_ITERATIONS, seed=seed,
                      spherical=(metric != "l2"), verbose=verbose,
                      max_points_per_centroid=SAMPLE_PER_LIST + 1, min_points_per_centroid=1)
    km.train(np.ascontiguousarray(sample, dtype=np.float32))
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def coarse_index(centroids: np.ndarray, metric: str) -> faiss.Index:
    """A faiss flat index over the centroids, built once per trained model and reused per search."""
    index = faiss.IndexFlatL2(centroids.shape[1]) if metric == "l2" else faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


def nearest_lists(X: np.ndarray, centroids: np.ndarray, metric: str, n: int, *,
                  index: faiss.Index | None = None) -> np.ndarray:
    """The n best lists for every row, best first (BLAS through faiss's flat index)."""
    index = coarse_index(centroids, metric) if index is None else index
    _, lists = index.search(np.ascontiguousarray(X, dtype=np.float32), n)
    return lists.astype(np.int64)


@dataclass(frozen=True)
class Probe:
    """Which lists a scan reads: the n nearest centroids of each query. A codec that holds the
    centroids in a better space may find them itself (SAQ: `kernels.probe`) and passes
    them through `restrict`; a search plan remembers the answer under `key` for the segments that
    share the model (`SearchPlan.lists`).

    With ``keep`` (a bool per list: the lists holding rows a filter allows), the probe reads the
    ``budget`` nearest kept lists among the n nearest, so a filter's nprobe is not spent on lists
    it leaves empty."""

    centroids: np.ndarray  # read-only
    metric: str
    n: int
    index: faiss.Index | None = None  # the coarse index over `centroids`; None: built per call
    keep: np.ndarray | None = None
    budget: int = 0

    @property
    def key(self) -> tuple:
        return (self.n,) if self.keep is None else (self.n, self.budget, self.keep.tobytes())

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if len(self.centroids) == 1:
            return np.zeros((len(X), 1), np.int64)
        if len(X) <= SMALL_ROWS:  # a few queries: numba on this thread, no faiss call or BLAS team
            return self.restrict(nearest_rows(readonly(X), self.centroids, self.n, self.metric == "l2"))
        return self.restrict(nearest_lists(X, self.centroids, self.metric, self.n, index=self.index))

    def restrict(self, lists: np.ndarray) -> np.ndarray:
        """Each row's first ``budget`` lists that ``keep`` allows, in order, -1 where there are
        fewer (the scans skip -1); the lists unchanged without ``keep``."""
        if self.keep is None:
            return lists
        ok = self.keep[np.maximum(lists, 0)] & (lists >= 0)
        order = np.argsort(~ok, axis=1, kind="stable")[:, :self.budget]
        return np.where(np.take_along_axis(ok, order, 1), np.take_along_axis(lists, order, 1), -1)


@dataclass(frozen=True)
class InvertedLists:
    """Rows grouped by list in CSR order: list l owns rows offsets[l]:offsets[l+1].

    ``codes`` (n, code_size) uint8 and ``factors`` (n, n_factors) float32 are the codec's per-row
    data; ``vectors`` (n, d) float32 are the raw vectors kept for exact re-ranking, or None.
    """

    offsets: np.ndarray
    ids: np.ndarray
    codes: np.ndarray
    factors: np.ndarray
    vectors: np.ndarray | None = None

    @property
    def nlist(self) -> int:
        return len(self.offsets) - 1

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    def list_sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def assignments(self) -> np.ndarray:
        """The list of every row."""
        return np.repeat(np.arange(self.nlist, dtype=np.int64), self.list_sizes())

    @classmethod
    def empty(cls, nlist: int, code_size: int, n_factors: int, dim: int | None) -> "InvertedLists":
        return cls(
            offsets=np.zeros(nlist + 1, dtype=np.int64),
            ids=np.zeros(0, dtype=np.int64),
            codes=np.zeros((0, code_size), dtype=np.uint8),
            factors=np.zeros((0, n_factors), dtype=np.float32),
            vectors=None if dim is None else np.zeros((0, dim), dtype=np.float32),
        )

    @classmethod
    def from_rows(cls, nlist: int, assign: np.ndarray, ids: np.ndarray, codes: np.ndarray,
                  factors: np.ndarray, vectors: np.ndarray | None = None) -> "InvertedLists":
        """Group rows by list (stable, so insertion order is kept within a list)."""
        order = np.argsort(assign, kind="stable")
        offsets = np.zeros(nlist + 1, dtype=np.int64)
        np.cumsum(np.bincount(assign, minlength=nlist), out=offsets[1:])
        return cls(
            offsets=offsets,
            ids=np.ascontiguousarray(ids[order]),
            codes=np.ascontiguousarray(codes[order]),
            factors=np.ascontiguousarray(factors[order]),
            vectors=None if vectors is None else np.ascontiguousarray(vectors[order]),
        )

    def merge(self, other: "InvertedLists") -> "InvertedLists":
        """A new CSR holding this object's rows then the other's, list by list."""
        assign = np.concatenate([self.assignments(), other.assignments()])
        cat = lambda a, b: None if a is None or b is None else np.concatenate([a, b])
        return InvertedLists.from_rows(
            self.nlist, assign, np.concatenate([self.ids, other.ids]),
            np.concatenate([self.codes, other.codes]), np.concatenate([self.factors, other.factors]),
            cat(self.vectors, other.vectors),
        )

    def select(self, keep: np.ndarray) -> "InvertedLists":
        """Only the rows where the boolean mask `keep` holds (used by compaction)."""
        assign = self.assignments()[keep]
        offsets = np.zeros(self.nlist + 1, dtype=np.int64)
        np.cumsum(np.bincount(assign, minlength=self.nlist), out=offsets[1:])
        return replace(
            self, offsets=offsets, ids=self.ids[keep], codes=self.codes[keep],
            factors=self.factors[keep], vectors=None if self.vectors is None else self.vectors[keep],
        )
