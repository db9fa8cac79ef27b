"""Scale-out benchmark: one machine, a cluster of 1 shard versus N shards on a local Ray, against
the same data in one in-process collection.

    python -m bench.scale --dataset synthetic-1000000-128-euclidean --spec IVF4096,SAQ4 --shards 2

Measured: build throughput (training on a sample read by Ray tasks, then reading and encoding
in Ray tasks and committing on the shards), recall@k and QPS at each nprobe for a batch of
queries and for single queries, and where a sharded query's extra time goes: the vectorised merge
of the shards' k best, and a Ray actor call's round trip; and what probing once at the router
saves: the router's probe, and a shard's search given the lists against probing itself.
Every shard gets ``cores / shards`` kernel threads, so 1 shard and N shards use the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import time

import numpy as np

from annvq import Collection
from annvq.distributed import ShardedCollection, build_sharded, connect
from annvq.distributed.sharded import merge

from .datasets import info
from .metrics import recall_at_k


def exact(X: np.ndarray, Q: np.ndarray, k: int) -> np.ndarray:
    """Exact Euclidean distances of every query's k nearest points (faiss, BLAS)."""
    import faiss

    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    D, _ = index.search(Q, k)
    return np.sqrt(np.maximum(D, 0))


def timed_batch(search, Q: np.ndarray, repeats: int = 3) -> tuple[float, np.ndarray]:
    """Best-of-``repeats`` QPS of one batch call, and the ids it found."""
    search(Q[:10])
    best, ids = 0.0, None
    for _ in range(repeats):
        t = time.perf_counter()
        ids = search(Q)
        best = max(best, len(Q) / (time.perf_counter() - t))
    return best, ids


def timed_single(search, Q: np.ndarray) -> float:
    """Median seconds of one query searched alone."""
    search(Q[:1])
    times = []
    for q in Q:
        t = time.perf_counter()
        search(q[None])
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def measure(search, X: np.ndarray, Q: np.ndarray, truth: np.ndarray, args) -> dict:
    """{nprobe: recall@k, batch QPS, median single-query seconds} of ``search(Q, k, nprobe=)``."""
    out = {}
    for nprobe in args.nprobe:
        qps, ids = timed_batch(lambda q: search(q, args.k, nprobe=nprobe)[1], Q)
        single = timed_single(lambda q: search(q, args.k, nprobe=nprobe), Q[:args.single])
        out[nprobe] = {"recall": recall_at_k(X, Q, truth, ids, args.k, "euclidean")[0], "batch_qps": qps,
                       "single_query_s": single}
    return out


def best_seconds(run, repeats: int = 3) -> float:
    """The fastest of ``repeats`` calls of ``run()``, after one untimed call."""
    run()
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return best


def probe_saving(model, col: Collection, Q: np.ndarray, args) -> dict:
    """{nprobe: seconds per query} of the router's probe (`Index.probed`) and of one shard's
    search probing itself against given the router's lists: batch (best of 3) and single
    queries (median)."""
    out = {}
    for nprobe in args.nprobe:
        probe = lambda q: model.probed(model.plan(q, args.k, nprobe=nprobe))
        P = probe(Q)
        row = {"batch": {
            "router_probe_s": best_seconds(lambda: probe(Q)) / len(Q),
            "shard_probes_itself_s": best_seconds(lambda: col.query(Q, args.k, nprobe=nprobe)) / len(Q),
            "shard_given_lists_s": best_seconds(lambda: col.query(Q, args.k, nprobe=nprobe, probes=P)) / len(Q)}}
        single = {"router_probe_s": [], "shard_probes_itself_s": [], "shard_given_lists_s": []}
        for i in range(args.single):
            q, p = Q[i:i + 1], P[i:i + 1]
            for name, run in (("router_probe_s", lambda: probe(q)),
                              ("shard_probes_itself_s", lambda: col.query(q, args.k, nprobe=nprobe)),
                              ("shard_given_lists_s", lambda: col.query(q, args.k, nprobe=nprobe, probes=p))):
                t = time.perf_counter()
                run()
                single[name].append(time.perf_counter() - t)
        row["single"] = {name: float(np.median(times)) for name, times in single.items()}
        out[nprobe] = row
    return out


def merge_seconds(nq: int, k: int, shards: int, repeats: int = 20) -> float:
    """Seconds per query of `merge` over ``shards`` answers of (nq, k)."""
    rng = np.random.default_rng(0)
    answers = [(np.sort(rng.random((nq, k), np.float32), axis=1), rng.integers(0, 1 << 40, (nq, k)))
               for _ in range(shards)]
    t = time.perf_counter()
    for _ in range(repeats):
        merge(answers, k, False)
    return (time.perf_counter() - t) / repeats / nq


def actor_round_trip(sc: ShardedCollection, repeats: int = 200) -> float:
    """Median seconds of a Ray call to a shard that does no work (count)."""
    import ray

    actor = sc.actors[0]
    ray.get(actor.count.remote())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        ray.get(actor.count.remote())
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def run(args) -> dict:
    entry = info(args.dataset)
    if entry.metric != "euclidean":
        raise SystemExit("bench.scale measures Euclidean datasets only.")
    chunks, Q = entry.build()
    X = np.concatenate(list(chunks))
    Q = np.ascontiguousarray(Q[:args.queries])
    src = os.path.join(args.out, "base.npy")
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    np.save(src, X)
    truth = exact(X, Q, args.k)
    cores = os.cpu_count()
    connect("local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    # compile (or load from numba's cache) every kernel once, outside the timed builds
    np.save(os.path.join(args.out, "warmup.npy"), X[:5000])
    build_sharded(os.path.join(args.out, "warmup.npy"), os.path.join(args.out, "warmup"), shards=1,
                  spec=re.sub(r"IVF\d+", "IVF16", args.spec), quiet=True)
    report = {"dataset": args.dataset, "n": len(X), "dim": X.shape[1], "spec": args.spec, "k": args.k,
              "queries": len(Q), "cores": cores, "train_size": args.train_size, "configs": {}}
    for shards in (1, args.shards):
        out = os.path.join(args.out, f"shards{shards}")
        threads = max(1, cores // shards)
        made = build_sharded(src, out, shards=shards, spec=args.spec, train_size=args.train_size,
                             threads=threads, quiet=True)
        total = made.train_seconds + made.start_seconds + made.add_seconds
        row = {"threads_per_shard": threads, "encode_tasks": made.tasks, "train_s": made.train_seconds,
               "start_shards_s": made.start_seconds,
               "add_s": made.add_seconds, "add_vectors_per_s": made.count / made.add_seconds,
               "build_vectors_per_s": made.count / total,
               "bytes_on_disk": made.bytes_on_disk}
        # no search timeout: a shard compiling or deriving its scan layout on loaded cores is waited for
        with ShardedCollection.open(out, read_only=True, threads=threads, timeout=None) as sc:
            sc.warmup()
            row["ray_round_trip_s"] = actor_round_trip(sc)
            row["nprobe"] = measure(sc.search, X, Q, truth, args)
            with Collection.open(os.path.join(out, "shard-000"), read_only=True) as col:  # one shard, in-process
                col.warmup()
                row["probe_once"] = probe_saving(sc.model, col, Q, args)
        report["configs"][f"{shards} shard(s)"] = row
        if shards == 1:  # the same collection searched in this process: no Ray, no merge
            with Collection.open(os.path.join(out, "shard-000"), read_only=True) as col:
                col.warmup()
                report["configs"]["in-process collection"] = {"nprobe": measure(col.search, X, Q, truth, args)}
    report["merge_s_per_query"] = {s: merge_seconds(len(Q), args.k, s) for s in (2, args.shards, 8)}
    return report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="synthetic-1000000-128-euclidean")
    ap.add_argument("--spec", default="IVF4096,SAQ4")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nprobe", type=lambda s: [int(v) for v in s.split(",")], default=[8, 16, 32, 64])
    ap.add_argument("--queries", type=int, default=1000, help="queries in the batch")
    ap.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    ap.add_argument("--train-size", type=int, default=100_000)
    ap.add_argument("--out", default="/tmp/annvq-scale-bench")
    args = ap.parse_args(argv)
    print(json.dumps(run(args), indent=1))


if __name__ == "__main__":
    main()
