"""Distributed build: a vector file in, a sharded cluster out.

Ray tasks read the training sample (`sample_chunk`) and the driver trains the model on it, writes
the cluster manifest and starts one shard actor per shard. Ray tasks (`encode_chunk`, one per
``chunk_rows`` rows of the file) then each read their own rows (`io.read_rows`), encode them with
the shared model and split them by shard; each shard commits its pieces of a group of tasks as
one segment (`Collection.add_encoded`) and merges its segments at the end. The driver reads no
vectors, so reading and encoding grow with the cluster's CPUs. It waits for the oldest group's
commits once more than IN_FLIGHT groups are in flight, so memory stays at a few chunks per shard.
The file and ``out`` must be on storage every node reaches.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..errors import ShardUnavailableError
from ..index import Index
from ..io import inspect_vectors, read_ids, read_rows, sample_row_numbers
from ..threads import set_threads
from ..validation import as_ids, check_int
from . import routing
from .sharded import ShardedCollection, _ray

#: rows read and encoded per Ray task
CHUNK_ROWS = 65_536
#: rows per shard committed as one segment (segments are merged at the end)
PERSIST_ROWS = 131_072
#: groups of tasks in flight before the driver waits for the oldest's commits (bounds memory)
IN_FLIGHT = 2
DEFAULT_TRAIN_SIZE = 100_000


@dataclass(frozen=True)
class ShardedBuild:
    """What `build_sharded` made, and how long it took."""

    path: str
    count: int
    dim: int
    spec: str
    metric: str
    shards: int
    tasks: int  # Ray tasks that read and encoded the file's chunks
    train_seconds: float  # sampling the file and training the model
    start_seconds: float  # the cluster manifest, and every shard started with the model
    add_seconds: float  # reading and encoding in tasks, committing on the shards, compacting
    bytes_on_disk: int


def build_sharded(src, out, *, shards: int, spec: str = "IVF1024,SAQ4", metric: str = "l2",
                  ids_col: str | None = None, vector_col: str | None = None, train_size: int | None = None,
                  seed: int = 0, store_vectors: bool = False, shard_cpus: float | None = None,
                  threads: int | None = None, chunk_rows: int = CHUNK_ROWS, quiet: bool = False) -> ShardedBuild:
    """Create a cluster of ``shards`` collections at ``out`` from the vectors in ``src`` (Ray
    must be connected, `connect`), encoded by one Ray task per ``chunk_rows`` rows. Ids come
    from ``ids_col`` or are 0..n-1. A failed build removes the directory it created."""
    shards = check_int(shards, "shards", "build_sharded")
    chunk_rows = check_int(chunk_rows, "chunk_rows", "build_sharded")
    src = os.path.abspath(os.fspath(src))  # the tasks may run in another directory
    n, dim = inspect_vectors(src, key=vector_col)
    ids = as_ids(read_ids(src, ids_col), n, name=f"{src}: column {ids_col!r}") if ids_col else None
    existed = os.path.exists(out) and bool(os.listdir(out))
    t0 = time.perf_counter()
    sample = _sample(src, vector_col, n, sample_row_numbers(n, train_size or DEFAULT_TRAIN_SIZE, seed), chunk_rows)
    model = Index(dim, spec, metric, store_vectors=store_vectors, seed=seed).train(sample)
    t1 = time.perf_counter()
    sc = None
    try:
        sc = ShardedCollection.create(out, model, shards=shards, timeout=None, shard_cpus=shard_cpus,
                                      threads=threads)
        t2 = time.perf_counter()
        tasks = _add(sc, src, vector_col, ids, n, chunk_rows, quiet)
        sc.compact()
        t3 = time.perf_counter()
        stats = sc.stats()
    except BaseException:
        if sc is not None:
            sc.close()
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise
    sc.close()
    return ShardedBuild(sc.path, stats["count"], dim, sc.spec, metric, shards, tasks, t1 - t0, t2 - t1, t3 - t2,
                        stats["bytes_on_disk"])


def sample_chunk(src: str, key: str | None, start: int, stop: int, rows: np.ndarray) -> np.ndarray:
    """The file rows ``start + rows`` of the chunk [start, stop): a Ray task's part of the sample."""
    return read_rows(src, start, stop, key=key)[rows]


def _sample(src: str, key: str | None, n: int, rows: np.ndarray, chunk_rows: int) -> np.ndarray:
    """The training sample (``rows``, sorted, as `io.sample_rows` draws them), read by one Ray
    task per chunk holding some of them."""
    read = _ray().remote(sample_chunk).options(num_cpus=1)
    starts = np.arange(0, n, chunk_rows)
    bounds = np.searchsorted(rows, np.append(starts, n))
    refs = [read.remote(src, key, int(a), min(int(a) + chunk_rows, n), rows[lo:hi] - a)
            for a, lo, hi in zip(starts, bounds[:-1], bounds[1:]) if hi > lo]
    return np.concatenate(_ray().get(refs))


def encode_chunk(src: str, key: str | None, start: int, stop: int, ids: np.ndarray | None, model_state: tuple,
                 shards: int):
    """Rows [start, stop) of ``src`` encoded by the model (`Index.state`), split by the shard
    their ids (default: the row numbers) route to: per shard (lists, ids, codes, factors, raw
    vectors or None) in the order `Shard.add_encoded` takes. A Ray task: one thread, as Ray
    gives it one CPU; a single shard's piece is returned alone (Ray's num_returns=1)."""
    set_threads(1)
    model = Index.from_state(*model_state)
    X = read_rows(src, start, stop, key=key)
    lists = model.encode_lists(X, np.arange(start, stop, dtype=np.int64) if ids is None else ids)
    columns = (lists.assignments(), lists.ids, lists.codes, lists.factors, lists.vectors)
    pieces = [tuple(None if c is None else c[rows] for c in columns) for rows in routing.split(lists.ids, shards)]
    return pieces[0] if shards == 1 else pieces


def _add(sc: ShardedCollection, src: str, key: str | None, ids: np.ndarray | None, n: int, chunk_rows: int,
         quiet: bool) -> int:
    """Run `encode_chunk` over the file's chunks and commit every shard's pieces of each group of
    tasks (PERSIST_ROWS rows per shard) as one segment; returns the number of tasks. The bar
    counts committed rows."""
    ray = _ray()
    if ray.available_resources().get("CPU", 0) < 1:
        raise ShardUnavailableError(
            f"No CPU is left for the encode tasks once the shards started ({ray.available_resources()}): "
            "start Ray with more CPUs or give the shards fewer (shard_cpus).")
    encode = ray.remote(encode_chunk).options(num_returns=sc.shards, num_cpus=1)
    starts = range(0, n, chunk_rows)
    group = max(1, PERSIST_ROWS * sc.shards // chunk_rows)  # tasks per segment of every shard
    in_flight: list[tuple[list, int]] = []  # (the shards' commit calls, rows they commit)
    with tqdm(total=n, unit="vec", desc="encode+commit", disable=quiet, smoothing=0) as bar:
        for g in range(0, len(starts), group):
            pieces = []
            for a in starts[g:g + group]:
                b = min(a + chunk_rows, n)
                refs = encode.remote(src, key, a, b, None if ids is None else ids[a:b], sc.model_ref, sc.shards)
                pieces.append(refs if sc.shards > 1 else [refs])
            commits = [(s, actor.add_encoded.remote(*[p[s] for p in pieces])) for s, actor in enumerate(sc.actors)]
            in_flight.append((commits, min(starts[g] + group * chunk_rows, n) - starts[g]))
            while len(in_flight) > (IN_FLIGHT if g + group < len(starts) else 0):
                commits, rows = in_flight.pop(0)
                sc.wait(commits, "encode+commit", write=True)
                bar.update(rows)
    return len(starts)
