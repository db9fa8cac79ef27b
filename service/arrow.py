"""Arrow IPC stream bodies (``application/vnd.apache.arrow.stream``) beside JSON: the upsert and
batch-query requests as Arrow tables, and batch-query answers as one.

Vectors travel as ``fixed_size_list<float32>[dim]`` and become one (n, dim) float32 matrix without
a per-float Python object (the JSON path builds 784 floats per vector, holding the GIL). What the
collection checks (dimension, non-finite values, duplicate ids, payload kinds) is refused with the
same codes as for JSON; a body that is no Arrow stream, or lacks a column, or has one of the wrong
type, is a 400 ``invalid_arrow``. Request columns:

* upsert: ``id`` (any integer type, no nulls), ``vector``, optional ``payload`` (JSON text of an
  object per row, null for none). No other column.
* batch query: ``vector``; the options travel as query parameters (`query_options`).

A batch-query answer (`hits_table`) has one row per query: ``ids`` fixed_size_list<int64>[k] and
``distances`` fixed_size_list<float32>[k] exactly as ``Collection.search`` returns them (padding
id -1, distance +-inf), ``found`` and ``nprobe`` (int32), and with ``with_payload`` a ``payloads``
list<string> column (JSON text or null, `found` entries); the schema metadata holds ``strategy``
and ``took_ms``.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from fastapi import Response

from annvq import Hits
from annvq.distributed.sharded import ShardedHits
from annvq.errors import DimensionMismatchError, InvalidVectorsError
from annvq.filters import InvalidFilterError
from annvq.kernels.finite import all_finite

from .errors import ApiError

ARROW_STREAM = "application/vnd.apache.arrow.stream"
UPSERT_COLUMNS = {"id", "vector", "payload"}
QUERY_COLUMNS = {"vector"}
# Query parameters of an Arrow batch query: QueryOptions' fields; `params` and `filter` are JSON.
QUERY_PARAMS = {"k", "nprobe", "rerank", "exact", "params", "filter", "with_payload", "with_vector"}


def is_arrow(content_type: str | None) -> bool:
    """Whether a Content-Type header names an Arrow IPC stream (parameters ignored)."""
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == ARROW_STREAM


def wants_arrow(accept: str | None) -> bool:
    """Whether an Accept header asks for an Arrow stream (JSON stays the default)."""
    return accept is not None and ARROW_STREAM in accept.lower()


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_arrow", message)


def read_table(raw: bytes, allowed: set[str], required: set[str]) -> pa.Table:
    """The one table in an Arrow IPC stream body, with `required` columns and no column outside
    `allowed`, and at least one row."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(raw)).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError) as exc:
        raise invalid(f"The body is not an Arrow IPC stream: {exc}") from None
    names = table.column_names
    if len(set(names)) != len(names):
        raise invalid(f"Duplicate column names in {names}.")
    if missing := sorted(required - set(names)):
        raise invalid(f"Missing column(s) {missing}; an Arrow body has {sorted(required)}"
                      f"{' and optionally ' + str(sorted(allowed - required)) if allowed - required else ''}.")
    if unknown := sorted(set(names) - allowed):
        raise invalid(f"Unknown column(s) {unknown}; allowed: {sorted(allowed)}.")
    if table.num_rows == 0:
        raise invalid("The Arrow body has no rows.")
    return table


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def vectors(table: pa.Table, dim: int, name: str = "vector") -> np.ndarray:
    """Column `name` as a float32 (n, dim) matrix: fixed_size_list (or list) of floats or integers;
    zero-copy for fixed_size_list<float32> in one chunk. A row of another length is a
    DimensionMismatchError, a null vector an InvalidVectorsError, NaN or Infinity (or a null
    element) a 400 ``non_finite_value``, as in JSON bodies."""
    arr = _one_array(table.column(name))
    t = arr.type
    if not (pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)) or not (
            pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        raise invalid(f"Column {name!r} must be fixed_size_list<float32>[{dim}]; got {t}.")
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidVectorsError(f"{name} row {row} is null.")
    n = len(arr)
    if pa.types.is_fixed_size_list(t):
        if t.list_size != dim:
            raise DimensionMismatchError(
                f"{name} rows have {t.list_size} dimensions, but the collection expects {dim}.")
    else:
        lengths = arr.value_lengths().to_numpy(zero_copy_only=False)
        if len(bad := np.flatnonzero(lengths != dim)):
            raise DimensionMismatchError(f"{name} row {int(bad[0])} has {int(lengths[bad[0]])} dimensions, "
                                         f"but the collection expects {dim}.")
    flat = arr.flatten()
    values = flat.to_numpy(zero_copy_only=False)  # a null element becomes NaN (floats) or fails below
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 becomes inf, refused below
        X = np.asarray(values, dtype=np.float32).reshape(n, dim)
    if not all_finite(X):  # numba, no (n, dim) bool temporary; the collection's check then finds none
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ApiError(400, "non_finite_value", f"{name} row {row}: NaN, Infinity, null or a value beyond float32.",
                       [{"loc": ["body", name, row], "msg": "Input should be a finite number",
                         "type": "finite_number"}])
    return X


def ids(table: pa.Table) -> np.ndarray:
    """Column ``id`` as int64: any integer type without nulls."""
    arr = _one_array(table.column("id"))
    if not pa.types.is_integer(arr.type):
        raise invalid(f"Column 'id' must be int64; got {arr.type}.")
    if arr.null_count:
        raise invalid("Column 'id' holds nulls.")
    try:
        arr = arr.cast(pa.int64())
    except pa.ArrowInvalid as exc:
        raise invalid(f"Column 'id' does not fit int64: {exc}") from None
    return arr.to_numpy(zero_copy_only=False)


def payloads(table: pa.Table) -> list[dict | None] | None:
    """Column ``payload`` (JSON text of an object per row, or null) as dicts; None without it."""
    if "payload" not in table.column_names:
        return None
    arr = _one_array(table.column("payload"))
    if pa.types.is_null(arr.type):
        return None
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise invalid(f"Column 'payload' must be string (JSON text of an object, or null); got {arr.type}.")
    out = []
    for i, text in enumerate(arr.to_pylist()):
        if text is None:
            out.append(None)
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise invalid(f"payload row {i} is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise invalid(f"payload row {i} must be a JSON object or null; got {type(value).__name__}.")
        out.append(value)
    return None if all(p is None for p in out) else out


def query_options(params) -> dict:
    """QueryOptions fields from the query parameters of an Arrow batch query (strings, coerced by
    pydantic as for JSON): k, nprobe, rerank, exact, with_payload, with_vector, and ``filter`` and
    ``params`` (codec knobs) as JSON text."""
    if unknown := sorted(set(params.keys()) - QUERY_PARAMS):
        raise ApiError(422, "validation_error", f"Unknown query parameter(s) {unknown}; allowed: {sorted(QUERY_PARAMS)}.",
                       [{"loc": ["query", u], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
                        for u in unknown])
    options: dict = {}
    search: dict = {}
    if "params" in params:
        try:
            search = json.loads(params["params"])
        except ValueError as exc:
            raise ApiError(400, "invalid_parameter", f"params must be a JSON object: {exc}") from None
        if not isinstance(search, dict):
            raise ApiError(400, "invalid_parameter", "params must be a JSON object.")
    for key in ("nprobe", "rerank", "exact"):
        if key in params:
            search[key] = params[key]
    if search:
        options["params"] = search
    if "filter" in params:
        try:
            options["filter"] = json.loads(params["filter"])
        except ValueError as exc:
            raise InvalidFilterError(f"filter must be JSON text of an object: {exc}") from None
    for key in ("k", "with_payload", "with_vector"):
        if key in params:
            options[key] = params[key]
    return options


def hits_table(found: Hits | ShardedHits, *, with_payload: bool, took_ms: float) -> pa.Table:
    """A batch answer as one row per query (module docstring); a sharded answer's coverage is
    JSON under the schema metadata key "coverage"."""
    nq, k = found.ids.shape
    ids = np.ascontiguousarray(found.ids, dtype=np.int64).reshape(-1)
    dist = np.ascontiguousarray(found.distances, dtype=np.float32).reshape(-1)
    columns = {"ids": pa.FixedSizeListArray.from_arrays(pa.array(ids), k),
               "distances": pa.FixedSizeListArray.from_arrays(pa.array(dist), k),
               "found": pa.array(found.found.astype(np.int32)),
               "nprobe": pa.array(np.asarray(found.nprobe, dtype=np.int32))}
    if with_payload:
        columns["payloads"] = pa.array(
            [[None if p is None else json.dumps(p, separators=(",", ":")) for p in found.payloads(qi)]
             for qi in range(nq)], pa.list_(pa.string()))
    meta = {"strategy": found.strategy, "took_ms": f"{took_ms:.3f}"}
    if isinstance(found, ShardedHits):
        meta["coverage"] = json.dumps(found.coverage.public())
    return pa.table(columns).replace_schema_metadata(meta)


def arrow_response(table: pa.Table) -> Response:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM)
