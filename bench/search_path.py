"""The collection search path: deletions inside the scan, and a single query's cost over segments.

    python -m bench.search_path [--dataset fashion-mnist-784-euclidean] [--spec IVF1024,SAQ4]

On one thread (``set_threads(1)``), against exact ground truth over the live rows:

* ``deleted``: half the rows deleted and not compacted, against the same collection compacted
  (a snapshot of it): recall@10 and QPS, batch (one call) and single (one call per query),
  timed in interleaved rounds, best round kept, and their ratio;
* ``segments``: the median time of a single-vector ``Collection.search`` on the whole set in
  one segment and in three (half, a third, a sixth of the rows).

Only the public ``Collection`` API is used, so the same file runs against an older checkout
(``PYTHONPATH=...``) for an A/B of the Python around the kernels.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import faiss
import numpy as np
from tqdm.auto import tqdm

from annvq import Collection
from annvq.threads import set_threads

from .datasets import load


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def build(path: str, X: np.ndarray, spec: str, sizes: list[int]) -> Collection:
    """A collection trained on the first persist, with one segment per entry of ``sizes``."""
    col = Collection.create(path, X.shape[1], spec=spec, train_threshold=sizes[0])
    start = 0
    for n in sizes:
        col.upsert(np.arange(start, start + n), X[start:start + n])
        col.persist()
        start += n
    col.warmup()
    return col


def timed(col: Collection, Q: np.ndarray, k: int, nprobe: int, mode: str) -> tuple[float, np.ndarray]:
    """(queries per second, ids) of one pass: one call for the batch, or one per query."""
    start = time.perf_counter()
    if mode == "batch":
        _, ids = col.search(Q, k, nprobe=nprobe)
    else:
        ids = np.concatenate([col.search(q, k, nprobe=nprobe)[1] for q in Q])
    return len(Q) / (time.perf_counter() - start), ids


def single_times(col: Collection, Q: np.ndarray, k: int, nprobe: int) -> np.ndarray:
    """Microseconds of each single-vector search."""
    out = np.empty(len(Q))
    for i, q in enumerate(Q):
        start = time.perf_counter()
        col.search(q, k, nprobe=nprobe)
        out[i] = (time.perf_counter() - start) * 1e6
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist-784-euclidean")
    parser.add_argument("--spec", default="IVF1024,SAQ4")
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--deleted", type=float, default=0.5, help="fraction of rows deleted")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    set_threads(1)
    ds = load(args.dataset, quiet=args.quiet)
    X, Q, k = ds.train, ds.test[:args.queries], 10
    n = len(X)
    out = {"dataset": args.dataset, "spec": args.spec, "nprobe": args.nprobe, "queries": len(Q)}
    with tempfile.TemporaryDirectory() as tmp:
        # --- deletions inside the scan, against the compacted collection ----------------------
        live_col = build(f"{tmp}/deleted", X, args.spec, [n])
        dead = np.flatnonzero(np.random.default_rng(0).random(n) < args.deleted)
        live_col.delete(dead)
        live_col.snapshot(f"{tmp}/compacted")
        compacted = Collection.open(f"{tmp}/compacted")
        compacted.compact()
        compacted.warmup()
        live = np.setdiff1d(np.arange(n), dead)
        _, truth = faiss.knn(Q, X[live], k)
        truth = live[truth]
        cols = {"deleted": live_col, "compacted": compacted}
        best = {(name, mode): (0.0, None) for name in cols for mode in ("batch", "single")}
        for _ in tqdm(range(args.rounds), desc="deleted vs compacted", disable=args.quiet):
            for mode in ("batch", "single"):
                for name, col in cols.items():
                    qps, ids = timed(col, Q, k, args.nprobe, mode)
                    best[name, mode] = max(best[name, mode], (qps, ids), key=lambda t: t[0])
        for (name, mode), (qps, ids) in best.items():
            out[f"{name} {mode}"] = {"qps": round(qps, 1), "recall": round(recall(ids, truth), 4),
                                     "full": bool((ids >= 0).all())}
        for mode in ("batch", "single"):
            out[f"deleted/compacted QPS {mode}"] = round(best["deleted", mode][0] / best["compacted", mode][0], 3)
        for col in cols.values():
            col.close()
        # --- a single query over one segment and over three ------------------------------------
        one = build(f"{tmp}/one", X, args.spec, [n])
        three = build(f"{tmp}/three", X, args.spec, [n // 2, n // 3, n - n // 2 - n // 3])
        assert three.stats()["segments"] == 3, three.stats()
        times = {"1 segment": [], "3 segments": []}
        for _ in tqdm(range(args.rounds), desc="single-vector search", disable=args.quiet):
            for name, col in (("1 segment", one), ("3 segments", three)):
                times[name].append(np.median(single_times(col, Q, k, args.nprobe)))
        for name, t in times.items():
            out[f"single-vector search us, {name}"] = round(float(min(t)), 1)
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
