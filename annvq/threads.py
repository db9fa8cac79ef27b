"""One switch for every thread pool a search or build runs on: numba's, faiss's OpenMP, and the
BLAS libraries numpy and faiss load (threadpoolctl finds them)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numba
import threadpoolctl

_lock = threading.Lock()
_blas_lock = threading.Lock()
_blas = {"controller": None}
_pools: dict[int, ThreadPoolExecutor] = {}


def _after_fork() -> None:
    """A forked child has none of the parent's threads: it makes its own pools and locks."""
    global _lock, _blas_lock
    _lock, _blas_lock = threading.Lock(), threading.Lock()
    _pools.clear()


os.register_at_fork(after_in_child=_after_fork)


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


def _blas_controller() -> threadpoolctl.ThreadpoolController:
    """Made on first use, once numpy's BLAS is loaded: it scans the loaded libraries."""
    if _blas["controller"] is None:
        _blas["controller"] = threadpoolctl.ThreadpoolController()
    return _blas["controller"]


def split_rows(work: Callable[[int, int], object], n: int, parts: int | None = None) -> list:
    """``[work(a, b), ...]`` over contiguous row ranges of [0, n), ``parts`` of them (default one
    per numba thread), on a pool of as many Python threads, with BLAS on its caller's thread alone;
    a single part runs on the caller's thread.

    For BLAS products followed by numba kernels: OpenBLAS's own workers busy-wait for about 2^28
    cycles (0.1 s) after every call, its thread timeout, and meanwhile take cores from the kernel
    that runs next. Building fashion-mnist's SAQ4 index on 2 threads spent 0.3 s of 1.95 that way.
    Concurrent callers take turns (`blas_on_callers`): each already has every thread busy.
    """
    parts = max(1, min(parts or numba.get_num_threads(), n))
    cuts = [n * i // parts for i in range(parts + 1)]
    pool = None
    if parts > 1:
        with _lock:
            pool = _pools.get(parts) or _pools.setdefault(parts, ThreadPoolExecutor(parts, "annvq-blas"))
    with blas_on_callers():
        if pool is None:
            return [work(0, n)]
        return list(pool.map(work, cuts[:-1], cuts[1:]))


@contextlib.contextmanager
def blas_on_callers() -> Iterator[None]:
    """BLAS runs each call on its caller's thread meanwhile, leaving no workers to spin after it
    (`split_rows`). Concurrent callers take turns: threadpoolctl lets one Python thread at a time
    set OpenBLAS's process-wide limit."""
    with _blas_lock, _blas_controller().limit(limits=1, user_api="blas"):
        yield
