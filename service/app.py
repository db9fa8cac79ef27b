"""Build the FastAPI app: settings, the collection registry, error handlers, metrics and routers.

Collections open in the lifespan (so a bad one is logged before the first request); kernels
compile in a background thread, and `/readyz` says 503 until they are warm while `/healthz`
already answers."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI

import annvq

from . import errors
from .body_limit import BodyLimitMiddleware
from .deps import require_api_key
from .metrics import Metrics, MetricsMiddleware
from .registry import Registry
from .routes import include_api
from .routes.health import guarded, router as health_router
from .settings import DEFAULT_MAX_REQUEST_BYTES, Settings

log = logging.getLogger("annvq.service")


def _warm(registry: Registry, ready: threading.Event) -> None:
    try:
        registry.warmup()
    except Exception:  # a failed warm-up only costs the first query its compile time
        log.exception("kernel warm-up failed")
    ready.set()


def create_app(data_dir: str | os.PathLike, *, api_key: str | None = None, read_only: bool = False,
               max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, threads: int | None = None,
               warmup: bool = True, ray_address: str | None = None, shard_timeout: float = 30.0) -> FastAPI:
    """The annvq service over the collections in `data_dir` (one sub-directory each).

    `api_key` guards every endpoint but /healthz and /readyz; `read_only` refuses writes with 403;
    bodies over `max_request_bytes` get 413; `threads` caps the worker threads that run blocking
    handlers: the search pool and, apart, the writes and admin calls; `warmup=False` skips
    compiling kernels at start-up. With `ray_address` ("local" or a Ray address) the sharded
    clusters in `data_dir` are served too, over the same API; a search waits `shard_timeout`
    seconds for their shards, then answers with the shards that answered and says which did not.
    """
    settings = Settings(data_dir=data_dir, api_key=api_key, read_only=read_only,
                        max_request_bytes=max_request_bytes, threads=threads, warmup=warmup,
                        ray_address=ray_address, shard_timeout=shard_timeout)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        limiter = anyio.to_thread.current_default_thread_limiter()
        if settings.threads is not None:
            limiter.total_tokens = settings.threads
        app.state.search_pool = ThreadPoolExecutor(int(limiter.total_tokens), thread_name_prefix="annvq-search")
        if settings.ray_address is not None:
            from annvq.distributed import connect

            await anyio.to_thread.run_sync(connect, settings.ray_address)
        await anyio.to_thread.run_sync(app.state.registry.open_all)
        if settings.warmup:
            threading.Thread(target=_warm, args=(app.state.registry, app.state.ready),
                             name="annvq-warmup", daemon=True).start()
        else:
            app.state.ready.set()
        try:
            yield
        finally:
            app.state.search_pool.shutdown(wait=True)  # searches finish before collections close
            await anyio.to_thread.run_sync(app.state.registry.close_all)

    app = FastAPI(title="annvq", version=annvq.__version__, lifespan=lifespan,
                  description="Approximate nearest-neighbour search over compressed codes.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.registry = Registry(settings.data_dir, read_only=settings.read_only,
                                  ray=settings.ray_address is not None, shard_timeout=settings.shard_timeout)
    app.state.metrics = Metrics()
    app.state.ready = threading.Event()
    errors.install(app)
    # the last middleware added runs first: metrics also time and count the 413s
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    # without a key there is nothing to check: FastAPI would still resolve the guard (and its
    # settings and header dependencies) on every request
    guard = [Depends(require_api_key)] if settings.api_key is not None else []
    include_api(app, guard)  # first: routes are matched in order, and queries are the hot path
    app.include_router(health_router)
    app.include_router(guarded, dependencies=guard)
    return app
