"""Nearest-neighbour queries, one vector or a batch. Handlers are plain ``def``, so searches run
in the threadpool (the numba kernels release the GIL) and never block the event loop. Each request
makes one trip through the threadpool: the body is parsed inside the handler (`parse_body`) and
the result returned as a ready `Response` (`json_response`)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from ..convert import as_matrix, hits, json_response, search_kwargs
from ..deps import CollectionDep, CollectionName, MetricsDep, RawBody, body_schema, parse_body
from ..schemas import BatchResult, Query, QueryBatch, QueryResult

router = APIRouter(prefix="/collections/{name}", tags=["query"])


@router.post("/query", response_model=QueryResult, openapi_extra=body_schema(Query))
def query(name: CollectionName, raw: RawBody, col: CollectionDep, metrics: MetricsDep):
    """The `k` nearest points to `vector`, best first, with payloads (and vectors if asked)."""
    start = time.perf_counter()
    body = parse_body(Query, raw)
    D, I = col.search(as_matrix([body.vector], col.dim, "vector"), body.k, **search_kwargs(body.params))
    out = hits(col, D[0], I[0], with_payload=body.with_payload, with_vector=body.with_vector)
    metrics.count_vectors(name, "query", 1)
    return json_response(QueryResult(**out, took_ms=(time.perf_counter() - start) * 1e3))


@router.post("/query/batch", response_model=BatchResult, openapi_extra=body_schema(QueryBatch))
def query_batch(name: CollectionName, raw: RawBody, col: CollectionDep, metrics: MetricsDep):
    """One search call for many vectors; `results[i]` answers `vectors[i]`."""
    start = time.perf_counter()
    body = parse_body(QueryBatch, raw)
    D, I = col.search(as_matrix(body.vectors, col.dim), body.k, **search_kwargs(body.params))
    results = [hits(col, d, i, with_payload=body.with_payload, with_vector=body.with_vector)
               for d, i in zip(D, I)]
    metrics.count_vectors(name, "query", len(results))
    return json_response(BatchResult(results=results, took_ms=(time.perf_counter() - start) * 1e3))
