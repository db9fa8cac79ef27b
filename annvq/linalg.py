"""Orthogonal transforms shared by the codecs: random rotations, PCA, padding to 64 dimensions.

Every transform here is orthogonal, so distances and inner products survive it unchanged
(docs/algorithms.md §1.3, §7.1): codes can be built in the transformed space and compared with raw
queries transformed the same way.
"""

from __future__ import annotations

import numpy as np

from .kernels.flat import small_matmul

#: Codes are packed in 64-bit words, so both SAQ and RaBitQ pad vectors to a multiple of 64.
BLOCK = 64
#: PCA is fitted on at most this many rows (a sample): the covariance converges long before.
PCA_SAMPLE = 65536
#: Products with at most this many rows run on one thread in numba: for a query or two, waking
#: BLAS's thread pool costs more than the product, and far more on a busy machine.
SMALL_ROWS = 8


def padded_dim(dim: int) -> int:
    """The smallest multiple of 64 that holds ``dim`` coordinates."""
    return -(-dim // BLOCK) * BLOCK


def pad64(X: np.ndarray) -> np.ndarray:
    """X (n, d) with zero columns appended up to a multiple of 64, as float32."""
    X = np.asarray(X, dtype=np.float32)
    out = np.zeros((X.shape[0], padded_dim(X.shape[1])), np.float32)
    out[:, :X.shape[1]] = X
    return out


def random_orthogonal(d: int, rng: np.random.Generator, batch: tuple[int, ...] = ()) -> np.ndarray:
    """Haar-random orthogonal (d, d) matrices (``batch + (d, d)``): QR of Gaussian matrices,
    signs fixed by diag(R); without the sign fix the distribution is not uniform."""
    q, r = np.linalg.qr(rng.standard_normal((*batch, d, d)))
    return (q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]).astype(np.float32)


def fit_pca(X: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-rank PCA of (a sample of) X: (mean (d,), components (d, d), variances (d,)).

    Columns of ``components`` are eigenvectors of the covariance, by descending variance; the
    variances are those of the projected data (np.var of each column, ddof 0).
    """
    if len(X) > PCA_SAMPLE:
        X = X[np.sort(rng.choice(len(X), PCA_SAMPLE, replace=False))]
    mean = np.asarray(X).mean(axis=0, dtype=np.float64)  # accumulated in float64, X not copied
    # float32 GEMM for the covariance (half the time of float64; its d x d result, not the
    # n x d data, is what eigh needs in float64)
    Xc = np.asarray(X, dtype=np.float32) - mean.astype(np.float32)
    eigvals, eigvecs = np.linalg.eigh((Xc.T @ Xc).astype(np.float64) / len(X))
    order = np.argsort(eigvals)[::-1]
    return (mean.astype(np.float32), np.ascontiguousarray(eigvecs[:, order], dtype=np.float32),
            np.maximum(eigvals[order], 0).astype(np.float32))


def apply_pca(X: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Project rows onto the principal axes: ``(X - mean) @ components``."""
    return (np.asarray(X, dtype=np.float32) - mean) @ components


def matmul(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``X @ W`` in float32: BLAS for batches, a single-threaded kernel for a few rows."""
    X = np.asarray(X, dtype=np.float32)
    if len(X) <= SMALL_ROWS:
        return small_matmul(np.ascontiguousarray(X), W)
    return X @ W


def block_diag(blocks: list[np.ndarray], dim: int) -> np.ndarray:
    """A (dim, dim) matrix with the given square blocks down the diagonal, identity after them."""
    out = np.eye(dim, dtype=np.float32)
    start = 0
    for b in blocks:
        out[start:start + len(b), start:start + len(b)] = b
        start += len(b)
    return out
