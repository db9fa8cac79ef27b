"""The ann-benchmarks ``BaseANN`` contract, plus what every wrapper here shares.

A wrapper is built from a config entry's ``base_args`` + ``args`` (build-time choices), gets its
search-time knobs through ``set_query_arguments``, and answers ``query``/``batch_query`` with row
indices into the training set. Everything it needs beyond ann-benchmarks' interface (shared coarse
centroids, the thread count, bytes per vector) lives here so the wrappers stay small.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: metric names of ann-benchmarks -> annvq's
METRICS = {"euclidean": "l2", "angular": "cosine"}

_THREADS = [1]
_CENTROID_CACHE: dict[tuple, np.ndarray] = {}


def set_threads(n: int) -> None:
    """Search and build threads for every library in this process (numba, OpenMP, BLAS, and the
    ``num_threads`` argument the other wrappers pass)."""
    import numba

    from annvq.threads import set_threads as cap

    n = max(1, int(n))
    _THREADS[0] = n
    cap(min(n, numba.config.NUMBA_NUM_THREADS))


def threads() -> int:
    return _THREADS[0]


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}; got {metric!r}.")
    return metric


def as_float32(X) -> np.ndarray:
    return np.ascontiguousarray(X, dtype=np.float32)


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero): angular search as inner product."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return as_float32(X / np.where(norms > 0, norms, 1))


def prepared(X: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as the peers index them: angular search runs as inner product on unit vectors,
    as annvq's cosine does."""
    return unit_rows(X) if metric == "angular" else as_float32(X)


def ivf_metric(metric: str) -> str:
    """The coarse quantizer's metric in annvq's terms (angular runs as IP on unit vectors)."""
    return "l2" if metric == "euclidean" else "ip"


def shared_centroids(X: np.ndarray, nlist: int, metric: str) -> np.ndarray:
    """The coarse centroids annvq trains for ``IVF{nlist}`` on X, so IVF peers probe the same lists.

    annvq's k-means (``annvq.ivf.train_centroids``, seed 0) is deterministic, so this is exactly
    the partition an ``annvq.Index`` would learn by itself; it is computed once per data set,
    nlist and metric and handed to every IVF build of a run (annvq: ``Index.train(X, centroids=)``).
    """
    X = as_float32(X)
    digest = hashlib.blake2b(X[:: max(1, len(X) // 256)].tobytes(), digest_size=16).hexdigest()
    key = (X.shape, digest, nlist, metric)
    if key not in _CENTROID_CACHE:
        from annvq.ivf import train_centroids

        _CENTROID_CACHE.clear()  # one data set per run: keep memory bounded
        _CENTROID_CACHE[key] = train_centroids(X, nlist, metric, seed=0)
    return _CENTROID_CACHE[key]


def current_rss_kb() -> float:
    """Resident memory of this process in kB (ann-benchmarks' unit), without needing psutil."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 1024
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


class BaseANN:
    """Base class of every wrapper (ann-benchmarks' interface, method for method)."""

    #: family name: the config entry's ``name``; one plot colour per family
    name = "base"

    def done(self) -> None:
        """Free the index."""

    def get_memory_usage(self) -> float | None:
        """Current memory of the process in kB; the runner reports the growth during ``fit``."""
        return current_rss_kb()

    def prepare_fit(self, X: np.ndarray) -> None:
        """Untimed set-up shared by every build of a run (IVF wrappers: the coarse k-means, see
        ``shared_centroids``), so build times compare the index builds alone. Not in ann-benchmarks."""

    def fit(self, X: np.ndarray) -> None:
        """Build the index over X (and compile/warm up anything the first query would)."""
        raise NotImplementedError

    def set_query_arguments(self, *args) -> None:
        """Search-time knobs, from the config's ``query_args``."""

    def query(self, q: np.ndarray, n: int) -> np.ndarray:
        """Row indices of the n nearest training vectors to q."""
        raise NotImplementedError

    def batch_query(self, X: np.ndarray, n: int) -> None:
        """Answer all queries at once; results come from ``get_batch_results``."""
        with ThreadPoolExecutor(max_workers=threads()) as pool:
            self.res = list(pool.map(lambda q: self.query(q, n), X))

    def get_batch_results(self) -> list[np.ndarray] | np.ndarray:
        return self.res

    def get_additional(self) -> dict:
        """Extra attributes stored with each result (ann-benchmarks stores them too)."""
        return {"bytes_per_vector": self.bytes_per_vector()}

    def bytes_per_vector(self) -> float | None:
        """Bytes the index stores per vector for search (codes, factors, links, kept vectors;
        ids excluded), so methods compare at equal memory."""
        return None

    # --- naming: ann-benchmarks identifies a run by str(algo) -------------------------------
    def build_label(self) -> str:
        """The build-time part of the name, e.g. ``IVF1024,SAQ4``."""
        raise NotImplementedError

    def query_label(self) -> str:
        """The search-time part of the name, e.g. ``nprobe=16``."""
        return ""

    def __str__(self) -> str:
        query = self.query_label()
        return f"{self.name}({self.build_label()}{', ' + query if query else ''})"
