"""Points: upsert (column-wise), delete, get by ids, get one, count and scroll (with a filter)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from .. import arrow
from ..convert import as_filter, as_matrix, json_response
from ..deps import CollectionDep, CollectionName, MetricsDep, RawBody, Writable, body_schema, parse_body
from ..errors import ApiError
from ..schemas import (CountResult, DeleteResult, PointIds, PointPublic, PointsCount, PointsGet, PointsPublic,
                       PointsScroll, PointsUpsert, ScrollPage, UpsertResult)

router = APIRouter(prefix="/collections/{name}/points", tags=["points"])


def public(point) -> PointPublic:
    vector = None if point.vector is None else point.vector.tolist()
    return PointPublic(id=point.id, vector=vector, payload=point.payload)


@router.put("", response_model=UpsertResult, dependencies=[Writable], openapi_extra=body_schema(PointsUpsert))
def upsert_points(name: CollectionName, raw: RawBody, col: CollectionDep, metrics: MetricsDep, request: Request):
    """Insert or replace points; all or nothing (a bad row rejects the whole request, and so does
    a payload whose indexed field holds a value of another kind). The body may also be an Arrow
    IPC stream (``Content-Type: application/vnd.apache.arrow.stream``): columns `id`, `vector`
    (fixed_size_list<float32>[dim]) and optionally `payload` (JSON text per row, or null)."""
    if arrow.is_arrow(request.headers.get("content-type")):
        table = arrow.read_table(raw, arrow.UPSERT_COLUMNS, {"id", "vector"})
        n = col.upsert(arrow.ids(table), arrow.vectors(table, col.dim), arrow.payloads(table))
        metrics.count_vectors(name, "upsert", n)
        return json_response({"upserted": n, "count": col.count})
    body = parse_body(PointsUpsert, raw)
    n = col.upsert(body.ids, as_matrix(body.vectors, col.dim), body.payloads)
    metrics.count_vectors(name, "upsert", n)
    return json_response({"upserted": n, "count": col.count})


@router.post("/delete", response_model=DeleteResult, dependencies=[Writable])
def delete_points(name: CollectionName, body: PointIds, col: CollectionDep, metrics: MetricsDep):
    """Delete points by id; `deleted` counts the ids that existed."""
    n = col.delete(body.ids)
    metrics.count_vectors(name, "delete", n)
    return DeleteResult(deleted=n, count=col.count)


@router.post("/get", response_model=PointsPublic)
def get_points(body: PointsGet, col: CollectionDep):
    """The points among `ids` that exist, in request order."""
    data = [public(p) for p in col.get(body.ids, with_vectors=body.with_vector,
                                       with_payloads=body.with_payload)]
    return PointsPublic(data=data, count=len(data))


# Bodies with a filter are parsed by `parse_body`, like the query routes': pydantic's JSON parser
# bounds the nesting depth (a 422), where json.loads would hand a filter nested thousands deep to
# the library's recursive parser.
@router.post("/count", response_model=CountResult, openapi_extra=body_schema(PointsCount))
def count_points(raw: RawBody, col: CollectionDep):
    """How many live points pass `filter` (every live point without one)."""
    body = parse_body(PointsCount, raw)
    return CountResult(count=col.count_matching(as_filter(body.filter)))


@router.post("/scroll", response_model=ScrollPage, openapi_extra=body_schema(PointsScroll))
def scroll_points(raw: RawBody, col: CollectionDep):
    """The live points that pass `filter`, in id order, `limit` at a time: start without a
    `cursor`, then send each page's `next_cursor` until it is null. A point that stays put
    while you page comes back exactly once."""
    body = parse_body(PointsScroll, raw)
    points, next_cursor = col.scroll(as_filter(body.filter), limit=body.limit, cursor=body.cursor,
                                     with_vectors=body.with_vector, with_payloads=body.with_payload)
    data = [public(p) for p in points]
    return ScrollPage(data=data, count=len(data), next_cursor=next_cursor)


@router.get("/{point_id}", response_model=PointPublic)
def get_point(name: CollectionName, point_id: int, col: CollectionDep):
    found = col.get([point_id])
    if not found:
        raise ApiError(404, "point_not_found", f"No point {point_id} in collection {name!r}.")
    return public(found[0])
