"""Algorithm wrappers by constructor name, as ann-benchmarks configs name them.

Modules are imported on first use, so a missing optional library (hnswlib, rabitqlib) only
removes its own rows. GPU wrappers are listed only when faiss reports a GPU.
"""

from __future__ import annotations

import importlib

from .base import BaseANN

# constructor -> "module:Class"
ALGORITHMS: dict[str, str] = {
    "AnnvqIVF": "bench.algorithms.annvq_ivf:AnnvqIVF",
    "FaissIVF": "bench.algorithms.faiss_cpu:FaissIVF",
    "FaissHNSW": "bench.algorithms.faiss_cpu:FaissHNSW",
    "HnswLib": "bench.algorithms.hnswlib_wrapper:HnswLib",
    "RabitqlibIVF": "bench.algorithms.rabitqlib_ivf:RabitqlibIVF",
}
GPU_ALGORITHMS: dict[str, str] = {
    "FaissGPUIVF": "bench.algorithms.faiss_gpu:FaissGPUIVF",
}


class UnavailableAlgorithm(Exception):
    """A constructor this machine cannot run (unknown, library missing, or no GPU)."""


def available() -> dict[str, str]:
    """Constructors runnable here: the CPU ones, plus the GPU ones when faiss sees a GPU."""
    from .faiss_gpu import gpu_available

    return {**ALGORITHMS, **(GPU_ALGORITHMS if gpu_available() else {})}


def get(constructor: str) -> type[BaseANN]:
    """The wrapper class for a config's ``constructor``."""
    if constructor in GPU_ALGORITHMS and constructor not in available():
        raise UnavailableAlgorithm(f"{constructor} needs a GPU and faiss reports none.")
    if constructor not in ALGORITHMS and constructor not in GPU_ALGORITHMS:
        raise UnavailableAlgorithm(
            f"Unknown algorithm constructor {constructor!r}; known: {sorted(ALGORITHMS) + sorted(GPU_ALGORITHMS)}."
        )
    module, cls = {**ALGORITHMS, **GPU_ALGORITHMS}[constructor].split(":")
    # a wrapper module imports its library at the top, so a missing library shows here
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise UnavailableAlgorithm(f"{constructor} needs {exc.name!r}, which is not installed.") from exc


__all__ = ["ALGORITHMS", "GPU_ALGORITHMS", "BaseANN", "UnavailableAlgorithm", "available", "get"]
