"""Slow, obvious twins of the fast code: the oracles tests compare against."""

import numpy as np


def clustered(n: int, dim: int, *, centers: int = 20, seed: int = 0) -> np.ndarray:
    """Gaussian clusters with a decaying per-dimension scale, like real embeddings."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(np.arange(1, dim + 1))
    means = rng.standard_normal((centers, dim)) * scale * 3
    X = means[rng.integers(centers, size=n)] + rng.standard_normal((n, dim)) * scale
    return X.astype(np.float32)


def exact_knn(X: np.ndarray, Q: np.ndarray, k: int, metric: str = "l2") -> np.ndarray:
    """Brute-force oracle: ids of the k nearest rows of X for each query."""
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    if metric == "l2":
        score = (Q.astype(np.float64) ** 2).sum(1)[:, None] - 2 * Q.astype(np.float64) @ X.T.astype(np.float64) \
            + (X.astype(np.float64) ** 2).sum(1)[None]
    else:
        score = -(Q.astype(np.float64) @ X.T.astype(np.float64))
    return np.argsort(score, axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true neighbours found (id overlap)."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))
