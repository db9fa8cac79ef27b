"""One place for numba flags, so every kernel compiles the same way."""

import numpy as np

# fastmath is safe: inputs are validated finite before they reach a kernel.
JIT = dict(cache=True, nogil=True, fastmath=True, boundscheck=False)
PARALLEL_JIT = dict(JIT, parallel=True)


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view, so memory-mapped and in-memory arrays hit one numba specialisation.
    (``setflags`` unconditionally: reading ``a.flags`` first costs more than it saves.)"""
    v = a.view()
    v.setflags(write=False)
    return v
