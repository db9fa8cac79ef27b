"""Payload indexes: a declared payload field extracted from every row's JSON into one typed Arrow
column per segment, so filters (`annvq.filters`) compare whole columns instead of parsing JSON.

A collection declares ``{field: kind}``; kinds are ``keyword`` (string), ``integer``, ``float``
and ``bool``. An indexed field holds one value of its kind per point, or nothing (absent or
null): a payload with another type there (a list, a string for an integer) is refused at upsert,
naming the point, so the column always agrees with the payloads it was built from.
"""

from __future__ import annotations

import json
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from .errors import InvalidParameterError

#: Arrow type of each kind's column
KINDS: dict[str, pa.DataType] = {"keyword": pa.large_string(), "integer": pa.int64(),
                                  "float": pa.float64(), "bool": pa.bool_()}


def check_kind(field: str, kind) -> str:
    """The kind of ``field``'s index, refused with the known kinds named when unknown."""
    if not isinstance(field, str) or not field:
        raise InvalidParameterError(f"A payload index needs a non-empty field name; got {field!r}.")
    if kind not in KINDS:
        raise InvalidParameterError(
            f"Unknown payload index kind {kind!r} for field {field!r}; known: {sorted(KINDS)}.")
    return kind


def check_schema(schema: Mapping | None) -> dict[str, str]:
    """A {field: kind} declaration, checked, sorted by field."""
    if schema is None:
        return {}
    if not isinstance(schema, Mapping):
        raise InvalidParameterError(
            f"payload_indexes must map field names to kinds, e.g. {{'label': 'integer'}}; got {schema!r}.")
    return {field: check_kind(field, schema[field]) for field in sorted(schema)}


def _fits(value, kind: str) -> bool:
    if value is None:
        return True
    if kind == "keyword":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) and -2**63 <= value < 2**63
    return isinstance(value, (int, float))


def _refusal(texts: pa.Array, ids: np.ndarray, schema: dict[str, str]) -> InvalidParameterError:
    """The error naming the first point whose payload does not fit the schema (error path only)."""
    for i, text in enumerate(texts.to_pylist()):
        payload = json.loads(text) if text else {}
        for field, kind in schema.items():
            value = payload.get(field)
            if not _fits(value, kind):
                return InvalidParameterError(
                    f"Payload field {field!r} is indexed as {kind}, but point {int(ids[i])} has "
                    f"{json.dumps(value)} ({type(value).__name__}): an indexed field holds one {kind} "
                    f"value or null.")
    return InvalidParameterError("The payloads do not fit the collection's payload indexes.")


def columns(texts: pa.LargeStringArray | None, ids: np.ndarray, schema: Mapping[str, str]) -> dict[str, pa.Array]:
    """The index column of every declared field over these rows (null where a row has no value),
    parsed from the payload JSON by Arrow's JSON reader in one pass."""
    n = len(ids)
    if not schema:
        return {}
    if texts is None or n == 0 or texts.null_count == n:
        return {field: pa.nulls(n, KINDS[kind]) for field, kind in schema.items()}
    # One newline-delimited JSON document: every row's text and "\n", "{}" where it has no payload;
    empty, newline = pa.scalar("", pa.large_string()), pa.scalar("\n", pa.large_string())
    filled = pc.fill_null(texts, "{}")
    # "" too: the JSON reader would skip a blank line and shift every row after it
    filled = pc.if_else(pc.equal(filled, empty), pa.scalar("{}", pa.large_string()), filled)
    lines = pc.binary_join_element_wise(filled, empty, newline)
    offsets = np.frombuffer(lines.buffers()[1], np.int64)[lines.offset:lines.offset + n + 1]
    body = lines.buffers()[2][offsets[0]:offsets[-1]]
    arrow_schema = pa.schema([(field, KINDS[kind]) for field, kind in schema.items()])
    options = pajson.ParseOptions(explicit_schema=arrow_schema, unexpected_field_behavior="ignore")
    try:
        table = pajson.read_json(pa.BufferReader(body), parse_options=options,
                                 read_options=pajson.ReadOptions(block_size=max(1 << 20, body.size + 1)))
    except pa.ArrowInvalid:
        raise _refusal(texts, ids, dict(schema)) from None
    return {field: table.column(field).combine_chunks() for field in schema}
