"""Recall as ann-benchmarks defines it, and the exact distances it is computed from.

ann-benchmarks (``ann_benchmarks/plotting/metrics.py: knn_threshold, get_recall_values``) does
not compare ids: it recomputes the distance from each query to every returned neighbour against
the train set, and counts a neighbour as found when that distance is at most the k-th true
distance plus an additive ``epsilon = 1e-3``. Ties at the k-th distance therefore count, and an
index's own (approximate) distances never enter the score.
"""

from __future__ import annotations

import numpy as np

METRICS = ("euclidean", "angular")
#: gathered float64 values per block when recomputing distances (bounds memory to ~64 MB)
BLOCK_VALUES = 1 << 23


def distances_to(metric: str, Q: np.ndarray, X: np.ndarray, ids: np.ndarray) -> np.ndarray:
    r"""Exact float64 distance (nq, k) from query i to rows ``X[ids[i]]``; id -1 gives +inf.

    ``euclidean`` is :math:`\|q - x\|_2`; ``angular`` is the cosine distance
    :math:`1 - \langle q, x\rangle / (\|q\|\|x\|)`, both as ann-benchmarks' ``distance.py``.
    Differences are taken before squaring, so there is no :math:`\|q\|^2 + \|x\|^2 - 2\langle
    q, x\rangle` cancellation.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}.")
    ids = np.asarray(ids)
    if ids.ndim != 2 or len(ids) != len(Q):
        raise ValueError(f"ids must be (nq, k) with nq = {len(Q)}; got shape {ids.shape}.")
    out = np.full(ids.shape, np.inf)
    if ids.size == 0:
        return out
    valid = ids >= 0
    safe = np.where(valid, ids, 0)
    block = max(1, BLOCK_VALUES // max(1, ids.shape[1] * X.shape[1]))
    for a in range(0, len(Q), block):
        q = np.asarray(Q[a:a + block], dtype=np.float64)[:, None, :]
        x = np.asarray(X[safe[a:a + block]], dtype=np.float64)
        if metric == "euclidean":
            diff = x - q
            d = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        else:
            dots = np.einsum("ijk,ijk->ij", x, q)
            d = 1.0 - dots / (np.linalg.norm(x, axis=2) * np.linalg.norm(q, axis=2))
        out[a:a + block] = np.where(valid[a:a + block], d, np.inf)
    return out


def knn_recall(true_distances: np.ndarray, found_distances: np.ndarray, k: int,
               epsilon: float = 1e-3) -> tuple[float, np.ndarray]:
    """(mean recall, per-query recall) of the first k found distances against the k-th true one.

    A found distance counts when it is <= ``true_distances[:, k-1] + epsilon``; missing results
    (inf or NaN) never count. Per-query values are fractions of k.
    """
    true_distances = np.asarray(true_distances)
    found_distances = np.asarray(found_distances, dtype=np.float64)
    if k < 1 or k > true_distances.shape[1]:
        raise ValueError(f"k must be in [1, {true_distances.shape[1]}] (the true neighbours stored); got {k}.")
    if len(found_distances) != len(true_distances):
        raise ValueError(
            f"found distances are for {len(found_distances)} queries, true ones for {len(true_distances)}."
        )
    threshold = true_distances[:, k - 1].astype(np.float64) + epsilon
    per_query = (found_distances[:, :k] <= threshold[:, None]).sum(axis=1) / k
    return float(per_query.mean()), per_query


def recall_at_k(train: np.ndarray, test: np.ndarray, true_distances: np.ndarray, found_ids: np.ndarray,
                k: int, metric: str, epsilon: float = 1e-3) -> tuple[float, np.ndarray]:
    """ann-benchmarks k-nn recall of ``found_ids`` (nq, >=k), distances recomputed against ``train``."""
    found = distances_to(metric, test, train, np.asarray(found_ids)[:, :k])
    return knn_recall(true_distances, found, k, epsilon)
