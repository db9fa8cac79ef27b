"""Distributed build: a vector file in, a sharded cluster out.

The driver trains the model once on a sample, writes the cluster manifest and starts one shard
actor per shard; it then reads the file chunk by chunk, routes every chunk's rows by id and
sends each shard its rows. The shards encode in parallel (each persist encodes its buffer with
the shared model, as Ray actor tasks on their own cores or nodes) while the driver reads on; a
bounded number of persists is in flight, so memory stays at a few chunks per shard.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..index import Index
from ..io import inspect_vectors, iter_vector_chunks, read_ids, sample_rows
from ..validation import as_ids, check_int
from .sharded import ShardedCollection

#: rows read per chunk
CHUNK_ROWS = 65_536
#: rows buffered per shard before each persist (one segment each, merged at the end)
PERSIST_ROWS = 131_072
#: persists in flight before the driver waits for the oldest (bounds the buffered rows)
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
    train_seconds: float  # sampling the file and training the model
    start_seconds: float  # the cluster manifest, and every shard started with the model
    add_seconds: float  # reading, routing, encoding and persisting every row, compacting
    bytes_on_disk: int


def build_sharded(src, out, *, shards: int, spec: str = "IVF1024,SAQ4", metric: str = "l2",
                  ids_col: str | None = None, vector_col: str | None = None, train_size: int | None = None,
                  seed: int = 0, store_vectors: bool = False, shard_cpus: float | None = None,
                  threads: int | None = None, quiet: bool = False) -> ShardedBuild:
    """Create a cluster of ``shards`` collections at ``out`` from the vectors in ``src`` (Ray
    must be connected, `connect`). Ids come from ``ids_col`` or are 0..n-1. A failed build
    removes the directory it created."""
    shards = check_int(shards, "shards", "build_sharded")
    n, dim = inspect_vectors(src, key=vector_col)
    ids = as_ids(read_ids(src, ids_col), n, name=f"{src}: column {ids_col!r}") if ids_col else None
    existed = os.path.exists(out) and bool(os.listdir(out))
    t0 = time.perf_counter()
    size = min(n, train_size or DEFAULT_TRAIN_SIZE)
    model = Index(dim, spec, metric, store_vectors=store_vectors, seed=seed).train(
        sample_rows(src, size, key=vector_col, seed=seed, chunk_rows=CHUNK_ROWS))
    t1 = time.perf_counter()
    sc = None
    try:
        sc = ShardedCollection.create(out, model, shards=shards, timeout=None, shard_cpus=shard_cpus,
                                      threads=threads)
        t2 = time.perf_counter()
        _add(sc, src, vector_col, ids, n, quiet)
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
    return ShardedBuild(sc.path, stats["count"], dim, sc.spec, metric, shards, t1 - t0, t2 - t1, t3 - t2,
                        stats["bytes_on_disk"])


def _add(sc: ShardedCollection, src, key: str | None, ids: np.ndarray | None, n: int, quiet: bool) -> None:
    """Send every chunk's rows to their shards, persisting every PERSIST_ROWS rows per shard; the
    bar counts persisted (encoded) rows."""
    in_flight: list[tuple[list, int]] = []  # (upsert and persist calls, rows they persist)
    sent: list = []
    done = buffered = 0
    with tqdm(total=n, unit="vec", desc="encode+persist", disable=quiet, smoothing=0) as bar:
        for chunk in iter_vector_chunks(src, key=key, chunk_rows=CHUNK_ROWS):
            chunk_ids = ids[done:done + len(chunk)] if ids is not None else np.arange(done, done + len(chunk))
            sent += sc.send("upsert", chunk_ids, chunk)
            done += len(chunk)
            buffered += len(chunk)
            if buffered >= PERSIST_ROWS * sc.shards or done == n:
                in_flight.append((sent + sc.send_all("persist"), buffered))
                sent, buffered = [], 0
            while len(in_flight) > (IN_FLIGHT if done < n else 0):
                refs, rows = in_flight.pop(0)
                sc.wait(refs, "upsert+persist")
                bar.update(rows)
