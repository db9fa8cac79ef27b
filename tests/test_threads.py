"""annvq.threads: set_threads caps every pool (numba, OpenMP, BLAS); at_most caps numba in one thread."""

import threading

import numba
import numpy as np
import pytest
import threadpoolctl

from annvq.linalg import matmul
from annvq.threads import at_most, set_threads, split_rows


def test_set_threads_caps_numba_and_blas():
    before = numba.get_num_threads()
    limits = threadpoolctl.threadpool_info()
    try:
        set_threads(1)
        np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded by now
        assert numba.get_num_threads() == 1
        info = threadpoolctl.threadpool_info()
        assert any(i["user_api"] == "blas" for i in info)
        assert all(i["num_threads"] == 1 for i in info)
    finally:
        numba.set_num_threads(before)
        for lib in limits:
            threadpoolctl.threadpool_limits(lib["num_threads"], user_api=lib["user_api"])


@pytest.mark.parametrize("bad", [0, -1, 10_000])
def test_set_threads_refuses_out_of_range(bad):
    with pytest.raises(ValueError, match="threads must be in"):
        set_threads(bad)


def test_at_most_caps_numba_threads_in_this_thread_only_and_restores():
    before = numba.get_num_threads()
    seen_elsewhere = []
    with pytest.raises(RuntimeError):
        with at_most(1):
            assert numba.get_num_threads() == 1
            other = threading.Thread(target=lambda: seen_elsewhere.append(numba.get_num_threads()))
            other.start()
            other.join()
            raise RuntimeError("restored even when the search fails")
    assert numba.get_num_threads() == before
    assert seen_elsewhere == [numba.config.NUMBA_NUM_THREADS]  # other threads keep numba's default
    with at_most(before + 1):  # never raises the count
        assert numba.get_num_threads() == before


def blas_threads() -> list[int]:
    """Threads of the BLAS libraries with a process-wide setting (numpy's OpenBLAS runs on
    pthreads; an OpenMP-threaded one, as faiss bundles, has a setting per calling thread)."""
    return [i["num_threads"] for i in threadpoolctl.threadpool_info()
            if i["user_api"] == "blas" and i.get("threading_layer") != "openmp"]


def test_split_rows_covers_the_rows_on_numba_threads_with_blas_single_threaded():
    """A part per numba thread unless told, on the pool's threads; one part on the caller's; BLAS
    on one thread inside, as before after."""
    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded by now
    before = blas_threads()
    seen = []

    def work(a, b):
        seen.append((a, b, threading.get_ident(), blas_threads()))
        return b - a

    assert sum(split_rows(work, 1001)) == 1001
    assert [(a, b) for a, b, _, _ in sorted(seen)] == [
        (1001 * i // numba.get_num_threads(), 1001 * (i + 1) // numba.get_num_threads())
        for i in range(numba.get_num_threads())]
    if numba.get_num_threads() > 1:
        assert all(threads == [1] * len(before) for *_, threads in seen)
        assert threading.get_ident() not in {ident for _, _, ident, _ in seen}  # the pool's threads
    assert blas_threads() == before  # restored
    one_part = [(0, 10, threading.get_ident(), [1] * len(before))]  # on the caller's thread
    with at_most(1):
        assert split_rows(lambda a, b: (a, b, threading.get_ident(), blas_threads()), 10) == one_part
    assert split_rows(lambda a, b: (a, b, threading.get_ident(), blas_threads()), 10, parts=1) == one_part
    assert blas_threads() == before


def test_concurrent_split_rows_take_turns_each_with_blas_single_threaded():
    np.ones((64, 64)) @ np.ones((64, 64))
    before = blas_threads()
    seen = []
    callers = [threading.Thread(target=split_rows, args=(lambda a, b: seen.append(blas_threads()), 100))
               for _ in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(seen) == 3 * min(numba.config.NUMBA_NUM_THREADS, 100)  # fresh threads: numba's default
    if numba.config.NUMBA_NUM_THREADS > 1:
        assert all(threads == [1] * len(before) for threads in seen)
    assert blas_threads() == before


@pytest.mark.parametrize("rows,inner,cols", [(3, 48, 40), (200, 48, 40), (1100, 400, 320)])
def test_matmul_equals_numpy_into_out_or_a_new_array(rows, inner, cols):
    """A few rows (numba), a small batch (one BLAS call) and a large one (row blocks on threads)."""
    rng = np.random.default_rng(rows)
    X, W = rng.standard_normal((rows, inner)).astype(np.float32), rng.standard_normal((inner, cols)).astype(np.float32)
    want = X.astype(np.float64) @ W
    np.testing.assert_allclose(matmul(X, W), want, rtol=1e-4, atol=1e-3)
    out = np.full((rows, cols), np.nan, np.float32)
    assert matmul(X, W, out=out) is out
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-3)


def test_a_forked_child_splits_rows_on_threads_and_locks_of_its_own():
    """A fork copies the parent's locks, held or not, and none of its threads: forked while a
    product holds the BLAS lock, the child still splits rows."""
    import multiprocessing

    from annvq import threads

    split_rows(lambda a, b: None, 100)  # the parent's pools exist now
    with threads._blas_lock:  # a product in flight in another thread at the fork
        pool = multiprocessing.get_context("fork").Pool(1)
    try:
        assert pool.apply_async(split_rows, (_rows, 100)).get(timeout=60) == [
            (100 * i // numba.get_num_threads(), 100 * (i + 1) // numba.get_num_threads())
            for i in range(numba.get_num_threads())]
    finally:
        pool.terminate()


def _rows(a, b):
    return a, b
