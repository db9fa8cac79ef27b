"""JSON rows <-> numpy, search output -> response columns, and the fast JSON response."""

from __future__ import annotations

import numpy as np
import orjson
from fastapi import Response

from annvq import Hits
from annvq.distributed.sharded import ShardedHits
from annvq.errors import DimensionMismatchError
from annvq.filters import InvalidFilterError


def as_matrix(rows: list[list[float]], dim: int, name: str = "vectors") -> np.ndarray:
    """A float32 (n, dim) matrix; a row of another length is a DimensionMismatchError naming it
    (numpy would refuse a ragged list with a bare ValueError)."""
    for i, row in enumerate(rows):
        if len(row) != dim:
            raise DimensionMismatchError(
                f"{name} row {i} has {len(row)} dimensions, but the collection expects {dim}.")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused by the collection
        return np.array(rows, dtype=np.float32).reshape(len(rows), dim)


def as_filter(value) -> dict | None:
    """A request's ``filter``: a JSON object or null. Anything else is refused here, since the
    library would also take a string as JSON text; the library checks the object itself."""
    if value is None or isinstance(value, dict):
        return value
    raise InvalidFilterError(f"filter must be a JSON object (or null); got {type(value).__name__}.")


def search_kwargs(params, filter=None) -> dict:
    """Collection.query keywords from a `SearchParams` body and a request's filter; extra fields
    are codec knobs."""
    extra = dict(params.model_extra or {})
    return {"nprobe": params.nprobe, "rerank": params.rerank, "exact": params.exact,
            "params": extra or None, "filter": as_filter(filter)}


def hits(found: Hits | ShardedHits, *, with_payload: bool, with_vector: bool) -> list[dict]:
    """Each query's neighbours as columns, in the fields (and order) of `schemas.Hits`; the -1
    padding (fewer than k points) is dropped, so ``found`` is the number of ids. Payloads and
    vectors come from the snapshot that was searched (of a sharded collection: from the shards,
    after the search). A sharded answer says which shards it covers. The (nq, k) arrays become
    lists once, not per query."""
    ids, distances = found.ids.tolist(), found.distances.tolist()
    full = (found.ids >= 0).all(axis=1)
    coverage = found.coverage.public() if isinstance(found, ShardedHits) else None
    out = []
    for qi in range(len(ids)):
        if not full[qi]:
            keep = found.ids[qi] >= 0
            ids[qi], distances[qi] = found.ids[qi][keep].tolist(), found.distances[qi][keep].tolist()
        out.append({"ids": ids[qi], "distances": distances[qi],
                    "payloads": found.payloads(qi) if with_payload else None,
                    "vectors": [None if v is None else v.tolist() for v in found.vectors(qi)] if with_vector else None,
                    "found": len(ids[qi]), "nprobe": int(found.nprobe[qi]), "strategy": found.strategy,
                    "coverage": coverage})
    return out


def json_response(body: dict) -> Response:
    """`body` (plain values) serialised by orjson and returned as is. The route's `response_model`
    documents it; returning a Response skips FastAPI's re-validation of the result (for a ``def``
    endpoint, a second trip through the threadpool), and building no pydantic model skips
    pydantic's (about 50 us a query of k 10 on the hot query path)."""
    return Response(orjson.dumps(body), media_type="application/json")
