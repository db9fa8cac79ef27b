"""Thread settings for a server process: what ``annvq serve`` applies before it loads anything, and
what the HTTP load bench applies so that its in-process baseline runs under the same settings.

Imports nothing but the standard library (and `service/__init__.py` imports nothing), so calling
it first thing loads neither numpy, numba nor faiss."""

from __future__ import annotations

import os
import sys
import warnings

# Thread settings for a server. Requests already run concurrently, one per worker thread; helper
# threads inside a single-vector search only add wake-ups and spinning that take the cores from
# the event loop and the other requests.
# - OpenMP workers (numba's parallel kernels, faiss) spin after each parallel region by default.
# - OpenBLAS (numpy's matrix products) splits even one query's 784x784 matrix-vector product
#   over all cores, and its helper threads spin after each.
# What each setting buys: docs/service.md, Configuration.
SERVER_THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}


def use_server_threads() -> None:
    """Apply `SERVER_THREAD_ENV` where the environment does not say otherwise. The libraries read
    it once, when they load: call this before anything imports numpy, numba or faiss (cli.main
    imports commands lazily, so a command body is early enough); later it warns instead."""
    missing = {k: v for k, v in SERVER_THREAD_ENV.items() if k not in os.environ}
    loaded = sorted({"numpy", "numba", "faiss"} & sys.modules.keys())
    if missing and loaded:
        warnings.warn(f"{', '.join(loaded)} already loaded: the thread settings {missing} come too "
                      "late to take effect.", stacklevel=2)
    os.environ.update(missing)
