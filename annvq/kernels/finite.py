"""A finiteness check cheap enough to run on every query: numpy's ``isfinite(X).all()`` builds a
boolean temporary and costs microseconds even for one vector."""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)  # no fastmath here: it would assume every value finite
def all_finite(X):
    """Whether no element of the 2-D array X is NaN or +-Inf."""
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            if not np.isfinite(X[i, j]):
                return False
    return True
