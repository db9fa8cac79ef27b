"""``annvq serve``: run the HTTP service (uvicorn) over the collections in a data dir."""

from __future__ import annotations

import click

# The thread settings live in service/ (bench/http_load.py applies them too); SERVER_THREAD_ENV is
# re-exported for callers that know it from here.
from service.server_threads import SERVER_THREAD_ENV, use_server_threads  # noqa: F401

from .main import user_errors
from .options import require_ray, require_ray_serve


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
@click.option("--ray-serve", envvar="ANNVQ_RAY_SERVE", is_flag=True,
              help="With --ray: run the service as a Ray Serve deployment on that Ray (one replica; Serve's "
                   "proxy listens on --host and --port) instead of in this process.")
@click.option("--log-level", envvar="ANNVQ_LOG_LEVEL", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(**options):
    """Serve the collections under DATA_DIR (one sub-directory each) over HTTP.

    \b
    Every option can also come from the environment: ANNVQ_DATA_DIR, ANNVQ_HOST, ANNVQ_PORT,
    ANNVQ_MAX_REQUEST_MB, ANNVQ_THREADS, ANNVQ_READ_ONLY, ANNVQ_API_KEY, ANNVQ_LOG_LEVEL,
    ANNVQ_RAY, ANNVQ_SHARD_TIMEOUT, ANNVQ_RAY_SERVE.
    API docs: http://HOST:PORT/docs

    \b
    Examples:
      annvq serve db                                   # http://127.0.0.1:8000
      ANNVQ_API_KEY=secret annvq serve db --host 0.0.0.0 --port 8080
      annvq serve db --read-only --max-request-mb 16 --threads 8
      annvq serve db --ray local --shard-timeout 5     # also the clusters of annvq build --ray
      annvq serve db --ray ray://head:10001 --ray-serve --host 0.0.0.0   # hosted by Ray Serve
    """
    use_server_threads()  # before user_errors imports annvq, and with it numpy, numba and faiss
    _serve(**options)


@user_errors
def _serve(data_dir, host, port, max_request_mb, threads, read_only, api_key, no_warmup, ray_address,
           shard_timeout, ray_serve, log_level):
    import uvicorn

    from service.app import create_app

    if ray_serve and ray_address is None:
        raise click.UsageError("--ray-serve needs --ray ADDRESS|local: the Ray to deploy on.")
    if ray_address is not None:
        require_ray()
    options = dict(api_key=api_key, read_only=read_only, max_request_bytes=int(max_request_mb * 1024 * 1024),
                   threads=threads, warmup=not no_warmup, shard_timeout=shard_timeout)
    if ray_serve:
        require_ray_serve()
        deploy_on_ray_serve(data_dir, ray_address, host, port, blocking=True, **options)
        return
    app = create_app(data_dir, ray_address=ray_address, **options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")


def deploy_on_ray_serve(data_dir, address: str, host: str, port: int, *, blocking: bool = False,
                        **app_options) -> None:
    """Run the service app (`service.app.create_app`) as a Ray Serve deployment on the Ray at
    ``address``, Serve's HTTP proxy on host:port; returns once it answers (with ``blocking``,
    never). One replica: the app holds each collection's and cluster's writer lock, and every
    replica would start shard actors of its own. The app is built in the replica, not pickled."""
    import os

    from ray import serve

    from annvq.distributed import connect

    data_dir = os.path.abspath(data_dir)  # the replica runs in another directory
    connect(address)

    def build():
        from service.app import create_app

        return create_app(data_dir, ray_address=address, **app_options)

    deployment = serve.deployment(serve.ingress(build)(), name="annvq", ray_actor_options={"num_cpus": 0})
    serve.start(http_options={"host": host, "port": port})
    serve.run(deployment.bind(), name="annvq", route_prefix="/", blocking=blocking)
