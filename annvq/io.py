"""Read vector files: ``.npy``, ``.fvecs``/``.bvecs``/``.ivecs``, ann-benchmarks ``.hdf5`` and
Arrow (``.parquet``, ``.arrow``/``.feather``/``.ipc``).

Every reader streams: ``.npy`` and ``*vecs`` are memory-mapped, HDF5 is read in slices and Arrow
in record batches, so a file larger than memory can be fed to ``Index.add`` chunk by chunk.
Rows come back as C-contiguous float32; a bad file raises :class:`InvalidFileError` naming the
file and the problem (missing, unknown extension, empty, truncated, ragged, non-numeric, NaN/Inf).

    >>> for chunk in iter_vector_chunks("base.fvecs"):
    ...     index.add(chunk)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InvalidFileError, InvalidParameterError
from .validation import check_int

CHUNK_ROWS = 65536
#: the element type stored after each row's int32 dimension header in the TEXMEX *vecs formats
XVECS_DTYPES = {".fvecs": np.dtype("<f4"), ".bvecs": np.dtype("u1"), ".ivecs": np.dtype("<i4")}
HDF5_SUFFIXES = (".hdf5", ".h5")
ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
SUFFIXES = (".npy", *XVECS_DTYPES, *HDF5_SUFFIXES, ".parquet", *ARROW_SUFFIXES)
#: a *vecs header larger than this is taken as a sign of a corrupt or foreign file
MAX_DIM = 1 << 20


@dataclass(frozen=True)
class _Source:
    """An opened file: its shape, a function yielding raw row chunks in file order, and one
    reading the raw rows [a, b)."""

    n: int
    dim: int
    chunks: Callable[[int], Iterator[np.ndarray]]
    read: Callable[[int, int], np.ndarray]


# --- public API --------------------------------------------------------------------------------
def inspect_vectors(path, *, key: str | None = None) -> tuple[int, int]:
    """(number of rows, dimension) without reading the rows."""
    src = _open(path, key)
    return src.n, src.dim


def iter_vector_chunks(path, *, key: str | None = None, chunk_rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """float32 (rows, dim) chunks of at most ``chunk_rows`` rows, in file order.

    The file is opened and its header checked now; row errors (NaN, ragged rows) surface when
    the chunk holding them is reached. A chunk of a float32 ``.npy`` file is a read-only view
    of the memory map, not a copy.
    """
    chunk_rows = check_int(chunk_rows, "chunk_rows", "iter_vector_chunks")
    path = Path(path)
    return _checked_chunks(_open(path, key), path, chunk_rows)


def read_rows(path, start: int, stop: int, *, key: str | None = None) -> np.ndarray:
    """Rows [start, stop) as float32 (C-contiguous), checked as `iter_vector_chunks` checks them:
    a piece of a file that several processes read at once (a distributed build's Ray tasks).
    ``.npy``, ``*vecs`` and HDF5 read the range alone; Arrow files pass over the batches before it."""
    path = Path(path)
    src = _open(path, key)
    if not 0 <= start < stop <= src.n:
        raise InvalidParameterError(f"{path}: rows [{start}, {stop}) are not a non-empty range of its {src.n} rows.")
    return _checked(src.read(start, stop), path, start)


def read_vectors(path, *, key: str | None = None) -> np.ndarray:
    """The whole file as one float32 (n, dim) matrix (HDF5: dataset ``key``, default ``train``)."""
    path = Path(path)
    src = _open(path, key)
    out = np.empty((src.n, src.dim), dtype=np.float32)
    row = 0
    for chunk in _checked_chunks(src, path, CHUNK_ROWS):
        out[row:row + len(chunk)] = chunk
        row += len(chunk)
    return out


def sample_rows(path, size: int, *, key: str | None = None, seed: int = 0,
                chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """``size`` distinct rows drawn uniformly from the file (all of them when it has no more),
    gathered chunk by chunk into one float32 array: a training sample in bounded memory."""
    n, dim = inspect_vectors(path, key=key)
    rows = sample_row_numbers(n, size, seed)
    sample = np.empty((len(rows), dim), np.float32)
    start = 0
    for chunk in iter_vector_chunks(path, key=key, chunk_rows=chunk_rows):
        lo, hi = np.searchsorted(rows, [start, start + len(chunk)])
        sample[lo:hi] = chunk[rows[lo:hi] - start]
        start += len(chunk)
    return sample


def sample_row_numbers(n: int, size: int, seed: int = 0) -> np.ndarray:
    """The sorted row numbers `sample_rows` draws: ``size`` of ``n`` (all when n <= size)."""
    size = min(check_int(size, "size", "sample_rows"), n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False)) if size < n else np.arange(n)


def read_ids(path, column: str) -> np.ndarray:
    """An integer column of a Parquet or Arrow file as int64 (external ids next to vectors)."""
    import pyarrow as pa

    path = _existing(path)
    table = _arrow_table(path, [column])
    arr = table.column(column)
    if not pa.types.is_integer(arr.type):
        raise InvalidFileError(f"{path}: id column {column!r} must hold integers; it holds {arr.type}.")
    if arr.null_count:
        raise InvalidFileError(f"{path}: id column {column!r} has {arr.null_count} null value(s).")
    ids = arr.to_numpy()
    if ids.dtype == np.uint64 and ids.size and ids.max() > np.iinfo(np.int64).max:
        raise InvalidFileError(f"{path}: id column {column!r} has values beyond the int64 range.")
    return np.ascontiguousarray(ids, dtype=np.int64)


def write_fvecs(path, X) -> None:
    """Write float32 rows in the TEXMEX ``.fvecs`` layout (int32 dim, then dim float32)."""
    _write_xvecs(path, X, ".fvecs")


def write_bvecs(path, X) -> None:
    """Write uint8 rows in the ``.bvecs`` layout (int32 dim, then dim bytes)."""
    _write_xvecs(path, X, ".bvecs")


def write_ivecs(path, X) -> None:
    """Write int32 rows in the ``.ivecs`` layout (ground-truth ids, as TEXMEX ships them)."""
    _write_xvecs(path, X, ".ivecs")


# --- dispatch and row checks -------------------------------------------------------------------
def _existing(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InvalidFileError(f"{path}: no such file.")
    if not path.is_file():
        raise InvalidFileError(f"{path}: not a regular file.")
    if path.stat().st_size == 0:
        raise InvalidFileError(f"{path}: the file is empty.")
    return path


def _open(path, key: str | None) -> _Source:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidFileError(
            f"{path}: unknown vector file extension {suffix or '(none)'!r}; expected one of {', '.join(SUFFIXES)}."
        )
    path = _existing(path)
    if key is not None and suffix not in (*HDF5_SUFFIXES, ".parquet", *ARROW_SUFFIXES):
        raise InvalidFileError(f"{path}: a {suffix} file has no named datasets or columns (got key={key!r}).")
    if suffix == ".npy":
        src = _open_npy(path)
    elif suffix in XVECS_DTYPES:
        src = _open_xvecs(path, XVECS_DTYPES[suffix])
    elif suffix in HDF5_SUFFIXES:
        src = _open_hdf5(path, key or "train")
    else:
        src = _open_arrow(path, key)
    if src.n == 0 or src.dim == 0:
        raise InvalidFileError(f"{path}: the file holds no vectors (shape ({src.n}, {src.dim})).")
    return src


def _check_dtype(dtype, path: Path, what: str = "values") -> None:
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InvalidFileError(f"{path}: {what} must be numeric (int or float); found dtype {dtype}.")


def _checked_chunks(src: _Source, path: Path, chunk_rows: int) -> Iterator[np.ndarray]:
    """Raw row chunks as C-contiguous float32, refusing NaN/Inf (naming the file's row number)."""
    row = 0
    for raw in src.chunks(chunk_rows):
        out = _checked(raw, path, row)
        yield out
        row += len(out)


def _checked(raw: np.ndarray, path: Path, row: int) -> np.ndarray:
    """Raw rows (the first is file row ``row``) as C-contiguous float32, refusing NaN/Inf."""
    out = np.ascontiguousarray(raw, dtype=np.float32)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        raise InvalidFileError(f"{path}: row {row + int(np.flatnonzero(~finite)[0])} contains NaN or Inf.")
    return out


def _slices(n: int, chunk_rows: int, read: Callable[[int, int], np.ndarray]) -> Iterator[np.ndarray]:
    for start in range(0, n, chunk_rows):
        yield read(start, min(start + chunk_rows, n))


# --- .npy ----------------------------------------------------------------------------------
def _open_npy(path: Path) -> _Source:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        # object arrays, a bad header or a data section shorter than the header promises
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise InvalidFileError(f"{path}: values must be numeric; the file holds Python objects.") from None
        raise InvalidFileError(f"{path}: not a readable .npy file or truncated ({exc}).") from None
    except OSError as exc:
        raise InvalidFileError(f"{path}: not a readable .npy file ({exc}).") from None
    if arr.ndim != 2:
        raise InvalidFileError(f"{path}: expected a 2-D array (n, dim); found shape {arr.shape}.")
    _check_dtype(arr.dtype, path)
    read = lambda a, b: arr[a:b]
    return _Source(arr.shape[0], arr.shape[1], lambda c: _slices(len(arr), c, read), read)


# --- .fvecs / .bvecs / .ivecs --------------------------------------------------------------
def _open_xvecs(path: Path, dtype: np.dtype) -> _Source:
    """Each row is ``int32 dim`` then ``dim`` values; every row must declare the same dim."""
    size = path.stat().st_size
    if size < 4:
        raise InvalidFileError(f"{path}: truncated: {size} bytes is shorter than one row header.")
    dim = int(np.fromfile(path, dtype="<i4", count=1)[0])
    if not 0 < dim <= MAX_DIM:
        raise InvalidFileError(f"{path}: the first row declares dimension {dim}; not a {path.suffix} file?")
    row_bytes = 4 + dim * dtype.itemsize
    n = size // row_bytes
    rows = np.memmap(path, dtype=np.dtype([("dim", "<i4"), ("v", dtype, (dim,))]), mode="r", shape=(n,))
    if size % row_bytes:
        # Either a row declares another dim (so later rows are misaligned) or the file was cut short.
        _check_xvecs_dims(rows, path, dim, 0, n)
        raise InvalidFileError(
            f"{path}: truncated: {size} bytes is not a whole number of {row_bytes}-byte rows "
            f"(row {n} is incomplete)."
        )

    def read(a: int, b: int) -> np.ndarray:
        _check_xvecs_dims(rows, path, dim, a, b)
        return rows["v"][a:b]

    return _Source(n, dim, lambda c: _slices(n, c, read), read)


def _check_xvecs_dims(rows: np.ndarray, path: Path, dim: int, a: int, b: int) -> None:
    dims = rows["dim"][a:b]
    bad = np.flatnonzero(dims != dim)
    if bad.size:
        row = a + int(bad[0])
        raise InvalidFileError(
            f"{path}: ragged rows: row {row} declares dimension {int(dims[bad[0]])}, but row 0 declares {dim}."
        )


def _write_xvecs(path, X, suffix: str) -> None:
    dtype = XVECS_DTYPES[suffix]
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"{suffix} rows must be a 2-D array with at least one column; got shape {X.shape}.")
    rows = np.empty(len(X), dtype=np.dtype([("dim", "<i4"), ("v", dtype, (X.shape[1],))]))
    rows["dim"] = X.shape[1]
    rows["v"] = X
    tmp = f"{path}.tmp-{os.getpid()}"
    rows.tofile(tmp)
    os.replace(tmp, path)


# --- ann-benchmarks HDF5 -----------------------------------------------------------------------
def _open_hdf5(path: Path, key: str) -> _Source:
    import h5py  # optional at import time: the library must not hard-import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InvalidFileError(f"{path}: not a readable HDF5 file ({exc}).") from None
    with f:
        if key not in f or not isinstance(f[key], h5py.Dataset):
            raise InvalidFileError(f"{path}: no dataset {key!r}; the file has {sorted(f.keys())}.")
        ds = f[key]
        if ds.ndim != 2:
            raise InvalidFileError(f"{path}: dataset {key!r} must be 2-D (n, dim); found shape {ds.shape}.")
        _check_dtype(ds.dtype, path, f"dataset {key!r}")
        n, dim = ds.shape

    def chunks(chunk_rows: int) -> Iterator[np.ndarray]:
        with h5py.File(path, "r") as f:
            ds = f[key]
            try:
                yield from _slices(n, chunk_rows, lambda a, b: ds[a:b])
            except OSError as exc:
                raise InvalidFileError(f"{path}: dataset {key!r} cannot be read; truncated? ({exc})") from None

    def read(a: int, b: int) -> np.ndarray:
        with h5py.File(path, "r") as f:
            try:
                return f[key][a:b]
            except OSError as exc:
                raise InvalidFileError(f"{path}: dataset {key!r} cannot be read; truncated? ({exc})") from None

    return _Source(n, dim, chunks, read)


# --- Arrow: Parquet and IPC files ----------------------------------------------------------------
def _arrow_file(path: Path):
    """(schema, number of rows, batches(rows, columns) -> iterator) for a Parquet or Arrow IPC file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() == ".parquet":
            pf = pq.ParquetFile(path)
            return pf.schema_arrow, pf.metadata.num_rows, \
                lambda rows, columns: pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns)
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(path)))
            schema = reader.schema
            parts = [reader.get_batch(i) for i in range(reader.num_record_batches)]  # mapped, not read
        except pa.ArrowInvalid:  # the streaming IPC format has no footer
            table = pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
            schema, parts = table.schema, table.to_batches()
        return schema, sum(b.num_rows for b in parts), \
            lambda rows, columns: (b.select(columns).slice(start, rows)
                                   for b in parts for start in range(0, b.num_rows, rows))
    except (pa.ArrowException, OSError) as exc:
        raise InvalidFileError(f"{path}: not a readable {path.suffix} file ({exc}).") from None


def _arrow_table(path: Path, columns: list[str]):
    import pyarrow as pa

    schema, _, batches = _arrow_file(path)
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise InvalidFileError(f"{path}: no column {missing[0]!r}; the file has {schema.names}.")
    return pa.Table.from_batches(list(batches(CHUNK_ROWS, columns)),
                                 schema=pa.schema([schema.field(c) for c in columns]))


def _open_arrow(path: Path, key: str | None) -> _Source:
    import pyarrow as pa
    import pyarrow.compute as pc

    schema, n, batches = _arrow_file(path)
    column = _vector_column(path, schema, key)
    field = schema.field(column)
    value_type = field.type.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
        raise InvalidFileError(f"{path}: column {column!r} must hold numbers; its values are {value_type}.")
    if pa.types.is_fixed_size_list(field.type):
        dim = field.type.list_size
    else:  # list<float>: the first row fixes the dimension, every other row must match
        first = next(iter(batches(1, [column])), None)
        dim = 0 if first is None or first.num_rows == 0 else pc.list_value_length(first.column(column))[0].as_py()
        if dim is None:
            raise InvalidFileError(f"{path}: column {column!r} row 0 is null.")

    def chunks(chunk_rows: int) -> Iterator[np.ndarray]:
        row = 0
        for batch in batches(chunk_rows, [column]):
            arr = batch.column(column)
            yield _arrow_rows(arr, path, column, dim, row)
            row += len(arr)

    def read(a: int, b: int) -> np.ndarray:
        pieces, row = [], 0
        for batch in batches(CHUNK_ROWS, [column]):
            if row >= b:
                break
            lo, hi = max(a - row, 0), min(b - row, batch.num_rows)
            if lo < hi:
                pieces.append(batch.column(column).slice(lo, hi - lo))
            row += batch.num_rows
        return _arrow_rows(pa.concat_arrays(pieces), path, column, dim, a)

    return _Source(n, dim, chunks, read)


def _vector_column(path: Path, schema, key: str | None) -> str:
    """The named column, else the only column, else the only list-typed column."""
    import pyarrow as pa

    is_list = lambda t: pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    if key is not None:
        if key not in schema.names:
            raise InvalidFileError(f"{path}: no column {key!r}; the file has {schema.names}.")
        candidates = [key]
    else:
        candidates = schema.names if len(schema.names) == 1 else [f.name for f in schema if is_list(f.type)]
        if len(candidates) != 1:
            raise InvalidFileError(
                f"{path}: cannot tell which column holds the vectors among {schema.names}; name it with key=."
            )
    column = candidates[0]
    if not is_list(schema.field(column).type):
        raise InvalidFileError(
            f"{path}: column {column!r} must be a fixed-size list or list of numbers; "
            f"it is {schema.field(column).type}."
        )
    return column


def _arrow_rows(arr, path: Path, column: str, dim: int, row0: int) -> np.ndarray:
    """One batch of a list column as a (rows, dim) numpy array, refusing nulls and ragged rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if arr.null_count:
        bad = row0 + int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidFileError(f"{path}: column {column!r} row {bad} is null.")
    if not pa.types.is_fixed_size_list(arr.type):
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        ragged = np.flatnonzero(lengths != dim)
        if ragged.size:
            i = int(ragged[0])
            raise InvalidFileError(
                f"{path}: ragged rows: column {column!r} row {row0 + i} has {int(lengths[i])} values, "
                f"but row 0 has {dim}."
            )
    values = arr.flatten()
    if values.null_count:
        bad = row0 + int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0]) // dim
        raise InvalidFileError(f"{path}: column {column!r} row {bad} contains a null value.")
    return values.to_numpy(zero_copy_only=False).reshape(len(arr), dim)
