"""Typed dependencies, so a handler's signature reads like its spec: `CollectionDep` resolves the
``{name}`` path parameter to an open collection (404 once, here), `require_api_key` and
`require_writable` are guards attached with ``dependencies=[...]``, `RawBody` is the request body
as bytes for `parse_body`. All are ``async`` because none blocks: a sync dependency would cost a
threadpool hop per request. Each dependency also costs FastAPI event-loop time per request to
resolve (docs/service.md, Lean query routes), so the hot query routes use none: they read the
collection with `request_collection` and run in the search pool through `search_in_pool`.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from functools import partial
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from annvq import Collection

from .errors import ApiError
from .metrics import Metrics
from .registry import Registry
from .settings import Settings

_api_key_header = APIKeyHeader(name="api-key", auto_error=False, description="The server's API key.")
_bearer = HTTPBearer(auto_error=False, description="The server's API key as a bearer token.")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
NAME_HELP = "Collection name: 1-64 of [A-Za-z0-9_-]."
CollectionName = Annotated[str, Path(description=NAME_HELP)]


async def get_collection(name: CollectionName, request: Request) -> Collection:
    return request.app.state.registry.get(name)


CollectionDep = Annotated[Collection, Depends(get_collection)]


async def require_api_key(settings: SettingsDep,
                          header: Annotated[str | None, Security(_api_key_header)] = None,
                          bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None):
    """401 unless the request carries the configured key (`api-key` header or Bearer token).
    `create_app` attaches it only when a key is configured."""
    given = header if header is not None else (bearer.credentials if bearer else None)
    # compare_digest: the time taken does not depend on where the first wrong byte is.
    if given is None or not hmac.compare_digest(given.encode(), settings.api_key.encode()):
        raise ApiError(401, "unauthorized",
                       "Missing or wrong API key: send it in the 'api-key' header or as "
                       "'Authorization: Bearer <key>'.")


async def require_writable(settings: SettingsDep):
    """403 on every write when the server runs with --read-only."""
    if settings.read_only:
        raise ApiError(403, "read_only", "This server is read-only (--read-only); writes are refused.")


Writable = Depends(require_writable)


Model = TypeVar("Model", bound=BaseModel)


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def parse_body(model: type[Model], raw: bytes) -> Model:
    """`raw` validated as `model` by pydantic's own JSON parser; errors keep FastAPI's shape (loc
    starts with "body"). Handlers take `RawBody` and call this themselves, so the parse runs in
    the handler's worker thread: FastAPI parses a model-typed body on the event loop (a
    multi-megabyte upsert would stall every other request, /healthz included, for its parse)
    with ``json.loads`` plus validation, several times slower than this; a sync dependency would
    cost a threadpool hop of its own. Pair with ``openapi_extra=body_schema(model)``."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def body_schema(model: type[BaseModel], *, name_param: bool = False) -> dict:
    """The OpenAPI request body for a route that reads `model` through `parse_body`; with
    `name_param`, also the ``{name}`` path parameter of a route that reads it itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # nested models are in components already (other routes use them)
    extra = {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
    if name_param:
        extra["parameters"] = [{"name": "name", "in": "path", "required": True, "description": NAME_HELP,
                                "schema": {"type": "string", "title": "Name", "description": NAME_HELP}}]
    return extra


async def search_in_pool(request: Request, fn: Callable[..., Response], *args) -> Response:
    """``fn(*args)`` on the server's search pool, off the event loop: the one thread hop of a
    query request. Query routes take only the `Request` (the collection from `request_collection`)
    since each declared parameter or dependency costs FastAPI event-loop time per request, and a
    plain executor hop costs less than anyio's (docs/service.md, Lean query routes)."""
    return await asyncio.get_running_loop().run_in_executor(request.app.state.search_pool, partial(fn, *args))


def request_collection(request: Request) -> tuple[str, Collection]:
    """The ``{name}`` path parameter and its open collection (404 if none) for the lean query
    routes, which declare no parameters (`search_in_pool`)."""
    name = request.path_params["name"]
    return name, request.app.state.registry.get(name)
