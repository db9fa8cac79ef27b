"""numba kernels only: nothing here imports from the rest of annvq."""
