"""Orthogonal transforms shared by the codecs: random rotations, PCA, padding to 64 dimensions.

Every transform here is orthogonal, so distances and inner products survive it unchanged
(docs/algorithms.md §1.3, §7.1): codes can be built in the transformed space and compared with raw
queries transformed the same way.
"""

from __future__ import annotations

import numpy as np

from .kernels.flat import small_matmul
from .threads import blas_on_callers, split_rows

#: Codes are packed in 64-bit words, so both SAQ and RaBitQ pad vectors to a multiple of 64.
BLOCK = 64
#: PCA is fitted on at most this many rows (a sample): the covariance converges long before.
PCA_SAMPLE = 65536
#: Rows shifted at a time for the covariance, and rows whose mean is the shift.
COVARIANCE_CHUNK = 8192
SHIFT_ROWS = 1024
#: Products with at most this many rows run on one thread in numba: for a query or two, waking
#: BLAS's thread pool costs more than the product, and far more on a busy machine.
SMALL_ROWS = 8
#: Products of fewer multiply-adds are one single-threaded BLAS call: handing row blocks to threads
#: costs 0.3-0.4 ms here (a batch of 9 to 128 fashion-mnist queries), a tenth of the time for 2^27.
SPLIT_PRODUCT = 2 ** 27


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
    with blas_on_callers():  # as in `fit_pca`: no BLAS workers left spinning
        q, r = np.linalg.qr(rng.standard_normal((*batch, d, d)))
    return (q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]).astype(np.float32)


def fit_pca(X: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-rank PCA of (a sample of) X: (mean (d,), components (d, d), variances (d,)).

    Columns of ``components`` are eigenvectors of the covariance, by descending variance; the
    variances are those of the projected data (np.var of each column, ddof 0).
    """
    if len(X) > PCA_SAMPLE:
        X = X[np.sort(rng.choice(len(X), PCA_SAMPLE, replace=False))]
    # One pass, a block of rows per thread (`threads.split_rows`), around a shift s (the mean of
    # the first rows): the scatter of x - s and its column sums, so with d = mean(x - s),
    # cov = mean((x - s)(x - s)^T) - d d^T and the mean is s + d. The products are float32 (half
    # the time of float64) on chunks, summed in float64 for eigh; no centred copy of X to allocate.
    shift = np.asarray(X[:SHIFT_ROWS]).mean(axis=0, dtype=np.float64).astype(np.float32)

    def scatter(first: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        part, sums = np.zeros((X.shape[1], X.shape[1])), np.zeros(X.shape[1])
        shifted = np.empty((min(end - first, COVARIANCE_CHUNK), X.shape[1]), np.float32)
        for a in range(first, end, COVARIANCE_CHUNK):
            rows = X[a:min(end, a + COVARIANCE_CHUNK)]
            B = np.subtract(rows, shift, out=shifted[:len(rows)])
            part += B.T @ B
            sums += B.sum(axis=0, dtype=np.float64)
        return part, sums

    parts = split_rows(scatter, len(X))
    d = sum(s for _, s in parts) / len(X)
    mean = shift + d
    with blas_on_callers():  # LAPACK's BLAS workers would spin into the numba kernels that follow
        eigvals, eigvecs = np.linalg.eigh(sum(p for p, _ in parts) / len(X) - np.outer(d, d))
    order = np.argsort(eigvals)[::-1]
    return (mean.astype(np.float32), np.ascontiguousarray(eigvecs[:, order], dtype=np.float32),
            np.maximum(eigvals[order], 0).astype(np.float32))


def apply_pca(X: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Project rows onto the principal axes: ``(X - mean) @ components``."""
    return (np.asarray(X, dtype=np.float32) - mean) @ components


def matmul(X: np.ndarray, W: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``X @ W`` in float32 (into ``out`` if given): a single-threaded kernel for a few rows, BLAS on
    the caller's thread for small batches and over row blocks on annvq's threads for large ones
    (`threads.split_rows`: no BLAS workers left spinning to slow the numba kernel that reads the
    product)."""
    X = np.asarray(X, dtype=np.float32)
    if len(X) <= SMALL_ROWS and out is None:
        return small_matmul(np.ascontiguousarray(X), W)
    out = np.empty((len(X), W.shape[1]), np.float32) if out is None else out
    parts = 1 if X.shape[0] * X.shape[1] * W.shape[1] < SPLIT_PRODUCT else None
    split_rows(lambda a, b: np.matmul(X[a:b], W, out=out[a:b]), len(X), parts)
    return out


def block_diag(blocks: list[np.ndarray], dim: int) -> np.ndarray:
    """A (dim, dim) matrix with the given square blocks down the diagonal, identity after them."""
    out = np.eye(dim, dtype=np.float32)
    start = 0
    for b in blocks:
        out[start:start + len(b), start:start + len(b)] = b
        start += len(b)
    return out
