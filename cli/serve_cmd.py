"""``annvq serve``: run the HTTP service (uvicorn) over the collections in a data dir."""

from __future__ import annotations

import click

# The thread settings live in service/ (bench/http_load.py applies them too); SERVER_THREAD_ENV is
# re-exported for callers that know it from here.
from service.server_threads import SERVER_THREAD_ENV, use_server_threads  # noqa: F401

from .main import user_errors
from .options import require_ray


@click.command("serve")
@click.argument("data_dir", envvar="ANNVQ_DATA_DIR", type=click.Path(file_okay=False))
@click.option("--host", envvar="ANNVQ_HOST", default="127.0.0.1", show_default=True,
              help="Interface to bind; 0.0.0.0 exposes the service to the network.")
@click.option("--port", envvar="ANNVQ_PORT", type=click.IntRange(0, 65535), default=8000,
              show_default=True)
@click.option("--max-request-mb", envvar="ANNVQ_MAX_REQUEST_MB", type=click.FloatRange(min=0, min_open=True),
              default=64.0, show_default=True, help="Larger request bodies get 413.")
@click.option("--threads", envvar="ANNVQ_THREADS", type=click.IntRange(min=1), default=None,
              help="Worker threads running searches, and as many for writes (default 40).")
@click.option("--read-only", envvar="ANNVQ_READ_ONLY", is_flag=True,
              help="Open collections read-only and refuse every write with 403.")
@click.option("--api-key", envvar="ANNVQ_API_KEY", default=None,
              help="Require this key ('api-key' header or 'Authorization: Bearer') on every "
                   "endpoint but /healthz and /readyz. Prefer the environment variable.")
@click.option("--no-warmup", is_flag=True, help="Skip compiling kernels at start-up.")
@click.option("--ray", "ray_address", envvar="ANNVQ_RAY", default=None, metavar="ADDRESS|local",
              help="Also serve the sharded clusters under DATA_DIR (built by 'annvq build --ray') over "
                   "Ray: 'local' starts Ray here, else a running cluster's address.")
@click.option("--shard-timeout", envvar="ANNVQ_SHARD_TIMEOUT", type=click.FloatRange(min=0, min_open=True),
              default=30.0, show_default=True,
              help="Seconds a search waits for a cluster's shards; later ones are left out and named "
                   "in the answer's coverage.")
@click.option("--log-level", envvar="ANNVQ_LOG_LEVEL", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(**options):
    """Serve the collections under DATA_DIR (one sub-directory each) over HTTP.

    \b
    Every option can also come from the environment: ANNVQ_DATA_DIR, ANNVQ_HOST, ANNVQ_PORT,
    ANNVQ_MAX_REQUEST_MB, ANNVQ_THREADS, ANNVQ_READ_ONLY, ANNVQ_API_KEY, ANNVQ_LOG_LEVEL,
    ANNVQ_RAY, ANNVQ_SHARD_TIMEOUT.
    API docs: http://HOST:PORT/docs

    \b
    Examples:
      annvq serve db                                   # http://127.0.0.1:8000
      ANNVQ_API_KEY=secret annvq serve db --host 0.0.0.0 --port 8080
      annvq serve db --read-only --max-request-mb 16 --threads 8
      annvq serve db --ray local --shard-timeout 5     # also the clusters of annvq build --ray
    """
    use_server_threads()  # before user_errors imports annvq, and with it numpy, numba and faiss
    _serve(**options)


@user_errors
def _serve(data_dir, host, port, max_request_mb, threads, read_only, api_key, no_warmup, ray_address,
           shard_timeout, log_level):
    import uvicorn

    from service.app import create_app

    if ray_address is not None:
        require_ray()

    app = create_app(data_dir, api_key=api_key, read_only=read_only,
                     max_request_bytes=int(max_request_mb * 1024 * 1024), threads=threads,
                     warmup=not no_warmup, ray_address=ray_address, shard_timeout=shard_timeout)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")
