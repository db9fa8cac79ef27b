"""One router per resource, all under /v1; `include_api` mounts them on the app."""

from fastapi import FastAPI
from fastapi.params import Depends

from ..schemas import ErrorResponse
from . import admin, collections, payload_indexes, points, query

ERRORS = {400: "Bad value: wrong dimension, NaN/Inf, out of range, bad filter", 401: "Missing or wrong API key",
          403: "Server is read-only", 404: "Unknown collection, point, payload index or snapshot",
          409: "Collection exists", 413: "Body too large", 422: "Body does not match the schema"}
# Routes are matched in order, each by a regex: the hot query routes come first.
ROUTERS = (query.router, points.router, collections.router, payload_indexes.router, admin.router)


def include_api(app: FastAPI, dependencies: list[Depends]) -> None:
    """Mount every resource router under /v1 with `dependencies` (the API-key guard, if any)."""
    responses = {code: {"model": ErrorResponse, "description": text} for code, text in ERRORS.items()}
    for router in ROUTERS:
        app.include_router(router, prefix="/v1", dependencies=dependencies, responses=responses)
