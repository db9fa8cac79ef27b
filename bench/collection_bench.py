"""Collection storage benchmark: persist time, open time, resident memory after open versus bytes
on disk, and search QPS before and after reopening.

    python -m bench.collection_bench --dataset synthetic-1000000-128-euclidean --spec IVF4096,SAQ4

The model is trained first on a sample (timed apart), then every row is upserted and persisted
once, so "persist" is encoding plus durable writes. Open time and resident memory are measured in
a fresh process, so nothing from the writer is resident there. Synthetic rows are generated with
``bench.datasets`` (no ground truth is needed: results before and after reopening are compared
with each other).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

from annvq import Collection

from .datasets import info


def rss_bytes() -> int:
    """Current resident set size, from /proc (peak RSS would count the writer's buffers)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def qps(col: Collection, Q: np.ndarray, k: int, nprobe: int, repeats: int = 5) -> tuple[float, np.ndarray]:
    """Best-of-``repeats`` queries per second for one batch call, and the ids found."""
    col.search(Q[:10], k, nprobe=nprobe)  # kernels loaded, pages touched once
    best, ids = 0.0, None
    for _ in range(repeats):
        t = time.perf_counter()
        _, ids = col.search(Q, k, nprobe=nprobe)
        best = max(best, len(Q) / (time.perf_counter() - t))
    return best, ids


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def reopen(path: str, queries: str, k: int, nprobe: int) -> dict:
    """Run in a fresh process: open time, and RSS growth from open, from loading the kernels
    (numba/LLVM code, not data) and from searching (the pages of codes a search touches)."""
    import pyarrow as pa

    Q = np.load(queries)
    before = rss_bytes()
    allocated = pa.total_allocated_bytes()
    t = time.perf_counter()
    col = Collection.open(path, read_only=True)
    open_s = time.perf_counter() - t
    after_open = rss_bytes()
    arrow_alloc = pa.total_allocated_bytes() - allocated
    t = time.perf_counter()
    col.warmup()
    warmup_s = time.perf_counter() - t
    after_warmup = rss_bytes()
    rate, ids = qps(col, Q, k, nprobe)
    np.save(queries + ".ids.npy", ids)
    return {"open_s": open_s, "rss_open_bytes": after_open - before, "arrow_allocated_bytes": arrow_alloc,
            "warmup_s": warmup_s, "rss_warmup_bytes": after_warmup - after_open,
            "qps_after_reopen": rate, "rss_search_bytes": rss_bytes() - after_warmup,
            "count": col.count}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="synthetic-1000000-128-euclidean")
    ap.add_argument("--spec", default="IVF4096,SAQ4")
    ap.add_argument("--out", default="/tmp/annvq-collection-bench")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--train-sample", type=int, default=200_000)
    ap.add_argument("--no-store-vectors", action="store_true", help="keep codes only (no raw vectors on disk)")
    ap.add_argument("--reopen-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    queries = os.path.join(args.out + ".queries.npy")
    if args.reopen_only:
        print(json.dumps(reopen(args.out, queries, args.k, args.nprobe)))
        return

    entry = info(args.dataset)
    t = time.perf_counter()
    chunks, Q = entry.build()
    X = np.concatenate(list(chunks))
    Q = np.ascontiguousarray(Q[:1000])
    print(f"data: {X.shape} generated in {time.perf_counter() - t:.1f} s", flush=True)
    np.save(queries, Q)
    shutil.rmtree(args.out, ignore_errors=True)
    metric = "l2" if entry.metric == "euclidean" else "cosine"
    col = Collection.create(args.out, entry.dim, metric=metric, spec=args.spec,
                            store_vectors=not args.no_store_vectors)
    report = {"dataset": args.dataset, "spec": args.spec, "n": len(X), "k": args.k, "nprobe": args.nprobe,
              "store_vectors": not args.no_store_vectors, "cpus": os.cpu_count()}
    sample = X[np.random.default_rng(0).choice(len(X), min(args.train_sample, len(X)), replace=False)]
    t = time.perf_counter()
    col.train(sample=sample)
    report["train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for start in range(0, len(X), 100_000):
        col.upsert(np.arange(start, min(start + 100_000, len(X))), X[start:start + 100_000])
    report["upsert_s"] = time.perf_counter() - t
    t = time.perf_counter()
    col.persist()
    report["persist_s"] = time.perf_counter() - t
    report["bytes_on_disk"] = dir_bytes(args.out)
    report["qps_before_reopen"], ids_before = qps(col, Q, args.k, args.nprobe)
    col.close()
    del X, sample
    out = subprocess.run([sys.executable, "-m", "bench.collection_bench", "--reopen-only", "--out", args.out,
                          "--k", str(args.k), "--nprobe", str(args.nprobe)],
                         check=True, capture_output=True, text=True)
    report.update(json.loads(out.stdout.strip().splitlines()[-1]))
    report["identical_results_after_reopen"] = bool(np.array_equal(np.load(queries + ".ids.npy"), ids_before))
    report["writer_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
