"""Nearest-neighbour queries, one vector or a batch: the hot path, so lean. A handler reads the
collection and the raw body on the event loop and hands everything else (parsing, the search,
the JSON answer) to the search pool in one hop (`search_in_pool`): searches never block the
event loop, and the numba kernels release the GIL."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from annvq import Collection

from .. import arrow
from ..convert import as_matrix, hits, json_response, search_kwargs
from ..deps import body_schema, parse_body, request_collection, search_in_pool
from ..errors import ApiError
from ..metrics import Metrics
from ..schemas import BatchResult, Query, QueryBatch, QueryOptions, QueryResult

router = APIRouter(prefix="/collections/{name}", tags=["query"])


@router.post("/query", response_model=QueryResult, openapi_extra=body_schema(Query, name_param=True))
async def query(request: Request):
    """The `k` nearest points to `vector` that pass `filter` (if any), best first, with payloads
    (and vectors if asked), how many were found and how the search ran."""
    name, col = request_collection(request)
    return await search_in_pool(request, _query, name, col, await request.body(), request.app.state.metrics)


@router.post("/query/batch", response_model=BatchResult, openapi_extra=body_schema(QueryBatch, name_param=True))
async def query_batch(request: Request):
    """One search call for many vectors, one `filter` for all; `results[i]` answers `vectors[i]`.
    The body may also be an Arrow IPC stream (column `vector`, options as query parameters), and
    with ``Accept: application/vnd.apache.arrow.stream`` the answer is one (service/arrow.py)."""
    name, col = request_collection(request)
    headers = request.headers
    arrow_in = arrow.is_arrow(headers.get("content-type"))
    params = dict(request.query_params) if arrow_in else None
    return await search_in_pool(request, _query_batch, name, col, await request.body(), request.app.state.metrics,
                                params, arrow.wants_arrow(headers.get("accept")))


def _query(name: str, col: Collection, raw: bytes, metrics: Metrics) -> Response:
    start = time.perf_counter()
    body = parse_body(Query, raw)
    found = col.query(as_matrix([body.vector], col.dim, "vector"), body.k,
                      **search_kwargs(body.params, body.filter))
    out = hits(found, with_payload=body.with_payload, with_vector=body.with_vector)[0]
    metrics.count_vectors(name, "query", 1)
    return json_response({**out, "took_ms": (time.perf_counter() - start) * 1e3})


def _query_batch(name: str, col: Collection, raw: bytes, metrics: Metrics, arrow_params: dict | None = None,
                 arrow_out: bool = False) -> Response:
    """`arrow_params`: the query parameters of an Arrow body (None: a JSON body); `arrow_out`:
    answer in Arrow."""
    start = time.perf_counter()
    if arrow_params is None:
        body = parse_body(QueryBatch, raw)
        Q = as_matrix(body.vectors, col.dim)
    else:
        body = parse_options(arrow_params)
        Q = arrow.vectors(arrow.read_table(raw, arrow.QUERY_COLUMNS, arrow.QUERY_COLUMNS), col.dim)
    if arrow_out and body.with_vector:
        raise ApiError(400, "invalid_parameter", "with_vector is not available in Arrow answers; ask for JSON.")
    found = col.query(Q, body.k, **search_kwargs(body.params, body.filter))
    if arrow_out:
        metrics.count_vectors(name, "query", len(found.ids))
        took_ms = (time.perf_counter() - start) * 1e3
        return arrow.arrow_response(arrow.hits_table(found, with_payload=body.with_payload, took_ms=took_ms))
    results = hits(found, with_payload=body.with_payload, with_vector=body.with_vector)
    metrics.count_vectors(name, "query", len(results))
    return json_response({"results": results, "took_ms": (time.perf_counter() - start) * 1e3})


def parse_options(params: dict) -> QueryOptions:
    """QueryOptions from an Arrow batch query's query parameters, validated like a JSON body's
    (errors located under "query")."""
    try:
        return QueryOptions.model_validate(arrow.query_options(params))
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]) from None
