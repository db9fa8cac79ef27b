"""Service-level endpoints: index, liveness, readiness, metrics and the API docs. `/healthz` and
`/readyz` are ``async`` and touch no collection, so they answer while searches fill the threadpool,
and are the only endpoints open without the API key (`guarded` gets the key check when mounted)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, PlainTextResponse

import annvq

from ..deps import MetricsDep, RegistryDep
from ..errors import error_response
from ..schemas import ErrorResponse, Ready

router = APIRouter(tags=["service"])
guarded = APIRouter(tags=["service"])


@router.get("/healthz")
async def healthz():
    """Liveness: the process answers HTTP."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Ready,
            responses={503: {"model": ErrorResponse, "description": "Still starting."}})
async def readyz(request: Request, registry: RegistryDep):
    """Readiness: 200 once collections are open and kernels compiled, 503 until then."""
    ready = request.app.state.ready.is_set()
    body = Ready(status="ready" if ready else "starting", collections=registry.names(),
                 failed=registry.failed)
    if not ready:
        return error_response(503, "not_ready", "Collections are opening or kernels compiling.",
                              body.model_dump())
    return body


@guarded.get("/")
async def index(registry: RegistryDep):
    return {"name": "annvq", "version": annvq.__version__, "collections": registry.names(),
            "docs": "/docs", "openapi": "/openapi.json"}


@guarded.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, registry: RegistryDep, metrics: MetricsDep):
    """Prometheus text format."""
    stats = {}
    for name in registry.names():
        try:
            stats[name] = registry.get(name).stats()
        except annvq.errors.CollectionNotFoundError:
            continue
    return PlainTextResponse(metrics.render(stats, request.app.state.ready.is_set()),
                             media_type="text/plain; version=0.0.4; charset=utf-8")


@guarded.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request):
    return JSONResponse(request.app.openapi())


@guarded.get("/docs", include_in_schema=False)
async def docs():
    return get_swagger_ui_html(openapi_url="/openapi.json", title="annvq API")
