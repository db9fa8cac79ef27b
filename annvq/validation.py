"""Input checks shared by every entry point: one place, one message shape."""

from __future__ import annotations

import numbers

import numpy as np

from .errors import DimensionMismatchError, InvalidParameterError, InvalidVectorsError
from .kernels.finite import query_rows

METRICS = ("l2", "ip", "cosine")
INT64_MAX = np.iinfo(np.int64).max


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise InvalidParameterError(
            f"The 'metric' parameter must be one of {', '.join(METRICS)}. Got {metric!r}."
        )
    return metric


def check_int(value, name: str, owner: str, lo: int = 1, hi: int | None = None) -> int:
    """Return `value` as int, or raise with the sklearn-style message naming the range."""
    if type(value) is int and lo <= value and (hi is None or value <= hi):  # the common case, fast
        return value
    bounds = f"[{lo}, {'inf)' if hi is None else f'{hi}]'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be an int in the range {bounds}. "
            f"Got {value!r} instead."
        )
    if value < lo or (hi is not None and value > hi):
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be an int in the range {bounds}. "
            f"Got {value} instead."
        )
    return int(value)


def as_vectors(X, dim: int | None = None, *, name: str = "X", allow_empty: bool = False,
               unit: bool = False) -> np.ndarray:
    """Coerce to a C-contiguous float32 (n, dim) matrix; reject wrong shape and NaN/Inf. With
    ``unit`` (cosine, which is inner product on unit vectors) the rows are divided by their
    norms, and a zero row, which has no direction, is refused. One numba call checks and
    normalises (`finite.query_rows`, numpy's ``X / norm`` to the bit).

    A single 1-D vector is accepted as one row.
    """
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":  # bool, signed, unsigned, float
        raise InvalidVectorsError(f"{name} must be numeric; got dtype {arr.dtype}.")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidVectorsError(f"{name} must be a 2-D array (n, dim); got shape {arr.shape}.")
    if arr.shape[0] == 0 and not allow_empty:
        raise InvalidVectorsError(f"{name} holds no vectors (shape {arr.shape}).")
    if dim is not None and arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"{name} has {arr.shape[1]} dimensions, but the index expects {dim}."
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    out, bad = query_rows(arr, unit)
    if bad >= 0 and np.isfinite(arr[bad]).all():
        raise InvalidVectorsError(f"{name} row {bad} is a zero vector, which has no cosine direction.")
    if bad >= 0:
        raise InvalidVectorsError(f"{name} contains NaN or Inf (first in row {bad}).")
    return out


def as_ids(ids, n: int, *, name: str = "ids") -> np.ndarray:
    """Coerce to int64 ids, one per vector, unique within the call."""
    arr = np.asarray(ids)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidParameterError(f"{name} must be a 1-D array of {n} ids; got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == object:
            raise InvalidParameterError(f"{name} must be integers in the int64 range.")
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise InvalidParameterError(f"{name} must be integers; got dtype {arr.dtype}.")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise InvalidParameterError(f"{name} must fit in int64.")
    arr = arr.astype(np.int64, copy=False)
    if np.unique(arr).size != arr.size:
        raise InvalidParameterError(f"{name} contains duplicates.")
    return np.ascontiguousarray(arr)


def metric_vectors(X, dim: int, metric: str, *, name: str) -> np.ndarray:
    """`as_vectors`, with unit rows for cosine (cosine is inner product on unit vectors)."""
    return as_vectors(X, dim, name=name, unit=metric == "cosine")


def check_ids(ids, n: int | None = None, *, unique: bool = True) -> np.ndarray:
    """int64 ids in [0, 2**63 - 1] (-1 is reserved for "no result"); integral floats are accepted."""
    arr = np.atleast_1d(np.asarray(ids))
    kind = arr.dtype.kind if arr.size else "i"
    bad = arr.dtype == object or arr.ndim != 1 or kind not in "iuf"
    if not bad and kind == "f":
        bad = not (np.isfinite(arr) & (arr >= 0) & (arr < 2.0 ** 63) & (arr == np.round(arr))).all()
    if not bad and kind == "u":
        bad = arr.max() > INT64_MAX
    if not bad:
        arr = as_ids(arr, len(arr) if n is None else n) if unique else arr.astype(np.int64)
        bad = arr.size and arr.min() < 0
    if bad:
        shown = np.asarray(ids, dtype=object).ravel()[:4].tolist()
        raise InvalidParameterError(f"ids must be a 1-D list of integers in [0, {INT64_MAX}]; got {shown}...")
    return arr
