"""One switch for every thread pool a search or build runs on: numba's, faiss's OpenMP, and the
BLAS libraries numpy and faiss load (threadpoolctl finds them)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numba
import threadpoolctl


def set_threads(n: int) -> None:
    """Cap numba, OpenMP and BLAS at ``n`` threads in this process (at most numba's pool size).

    Benchmarks call it so "1 thread" means one core for every library, BLAS included: numpy's
    OpenBLAS would otherwise run the query rotation GEMM on all cores.
    """
    import faiss

    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"threads must be in [1, {numba.config.NUMBA_NUM_THREADS}]; got {n}.")
    numba.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    threadpoolctl.threadpool_limits(n)


@contextlib.contextmanager
def at_most(n: int) -> Iterator[None]:
    """numba's parallel kernels called from this thread use at most ``n`` threads meanwhile.

    A kernel's prange over n queries has no work for more, yet every member of the team is still
    woken and joined (docs/benchmarks.md, The search path). numba's setting is per thread, so
    concurrent searches in other threads keep theirs.
    """
    before = numba.get_num_threads()
    if n >= before:
        yield
        return
    numba.set_num_threads(max(int(n), 1))
    try:
        yield
    finally:
        numba.set_num_threads(before)
