"""faiss GPU peers: ``GpuIndexIVFFlat`` / ``GpuIndexIVFPQ`` (and their cuVS versions where the
installed faiss has cuVS), cloned from a CPU index trained on annvq's coarse centroids.

Registered only when faiss reports a GPU (``gpu_available``); on a CPU-only machine this module
still imports, so the registry can say why these rows are absent.
"""

from __future__ import annotations

import faiss
import numpy as np

from .base import prepared
from .faiss_cpu import FaissIVF


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def cuvs_available() -> bool:
    """faiss builds with cuVS expose the CAGRA index; without cuVS ``use_cuvs`` cannot be set."""
    return gpu_available() and hasattr(faiss, "GpuIndexCagra")


class FaissGPUIVF(FaissIVF):
    """``IVF{n},Flat`` or ``IVF{n},PQ{M}`` on GPU 0; query argument ``nprobe``.

    GpuIndexIVFPQ takes only some M (1-4, 8, 12, ..., 32, 40, 48, 56, 64, 96 with float16 tables).
    """

    name = "faiss-gpu-ivf"

    def __init__(self, metric: str, factory: str, use_cuvs: bool = False):
        super().__init__(metric, factory)
        self.use_cuvs = bool(use_cuvs)
        if self.use_cuvs:
            self.name = "faiss-gpu-cuvs"

    def fit(self, X: np.ndarray) -> None:
        if not gpu_available():
            raise RuntimeError("faiss reports no GPU (faiss.get_num_gpus() == 0).")
        if self.use_cuvs and not cuvs_available():
            raise RuntimeError("this faiss build has no cuVS support.")
        super().fit(X)  # trains and fills the CPU index on the shared centroids
        self.code_size = self.ivf.code_size
        self.resources = faiss.StandardGpuResources()
        options = faiss.GpuClonerOptions()
        options.use_cuvs = self.use_cuvs
        if "PQ" in self.factory:
            options.useFloat16LookupTables = True  # faiss needs it for large M x 256 tables
        self.index = faiss.index_cpu_to_gpu(self.resources, 0, self.index, options)
        self.ivf = self.refine = None
        self.index.search(prepared(X[:8], self.metric), 10)  # warm the GPU

    def set_query_arguments(self, nprobe) -> None:
        self.nprobe = int(nprobe)
        faiss.GpuParameterSpace().set_index_parameter(self.index, "nprobe", self.nprobe)

    def bytes_per_vector(self) -> float:
        return float(self.code_size)

    def done(self) -> None:
        super().done()
        self.resources = None
