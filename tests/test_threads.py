"""annvq.threads: set_threads caps every pool (numba, OpenMP, BLAS); at_most caps numba in one thread."""

import threading

import numba
import numpy as np
import pytest
import threadpoolctl

from annvq.threads import at_most, set_threads


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
