"""annvq SAQ beside rabitqlib (Extended RaBitQ) and faiss IVF-RaBitQ on the same centroids, 1 thread.

    python -m bench.saq_vs_rabitq [--mode batch|single] [--queries 2000] [--nprobe 4 6 8 10 12 16 24 32]
    python -m bench.saq_vs_rabitq --dataset pydocs-256-angular --nlist 256 --target 0.9 0.95

Every index comes from the benchmark suite's wrappers (bench/algorithms), which share one IVF
k-means; ``set_threads(1)`` caps numba, OpenMP and BLAS. Timings are interleaved: for each
nprobe every index runs once per round, ``--rounds`` rounds, best time kept, so load from other
processes hits all of them alike. ``batch`` times one call over all queries, ``single`` one call
per query. The summary gives each index's QPS at each ``--target`` recall@10, interpolated in
log-QPS between the two nprobe values around it (issue 3's comparison at recall 0.95). Angular
datasets run every index on unit vectors (cosine; the coarse k-means is spherical).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from tqdm.auto import tqdm

from .algorithms.annvq_ivf import AnnvqIVF
from .algorithms.base import set_threads
from .algorithms.faiss_cpu import FaissIVF
from .algorithms.rabitqlib_ivf import RabitqlibIVF
from .datasets import load
from .metrics import recall_at_k

#: name -> (wrapper factory taking the dimension, the dataset's metric and nlist, query params);
#: "m=4" reuses the SAQ4 index, and CAQ4 is SAQ4 without the PCA and segments (Extended RaBitQ's code)
INDEXES = {
    **{f"annvq SAQ{b}": (lambda d, m, n, b=b: AnnvqIVF(m, f"IVF{n},SAQ{b}"), None) for b in (2, 3, 4, 5)},
    "annvq SAQ4 m=4": (lambda d, m, n: AnnvqIVF(m, f"IVF{n},SAQ4"), "m=4"),
    "annvq CAQ4": (lambda d, m, n: AnnvqIVF(m, f"IVF{n},CAQ4"), None),
    **{f"rabitqlib nbits={b}": (lambda d, m, n, b=b: RabitqlibIVF(m, n, b), None) for b in (4, 5)},
    **{f"faiss RaBitQ{b}": (lambda d, m, n, b=b: FaissIVF(m, f"RR{d},IVF{n},RaBitQ{b}"), None) for b in (4, 5)},
}


def qps_at(rows: list[dict], target: float) -> float | None:
    """QPS at `target` recall along one index's nprobe sweep (log-linear between neighbours)."""
    rows = sorted(rows, key=lambda r: r["nprobe"])
    for lo, hi in zip(rows, rows[1:]):
        if lo["recall"] < target <= hi["recall"]:
            t = (target - lo["recall"]) / (hi["recall"] - lo["recall"])
            return float(np.exp((1 - t) * np.log(lo["qps"]) + t * np.log(hi["qps"])))
    return rows[0]["qps"] if rows and rows[0]["recall"] >= target else None


def timed_search(algo, Q: np.ndarray, k: int, mode: str) -> tuple[float, np.ndarray]:
    """(seconds, ids (nq, k)) of one pass over the queries."""
    if mode == "batch":
        start = time.perf_counter()
        algo.batch_query(Q, k)
        return time.perf_counter() - start, np.asarray(algo.get_batch_results())
    start = time.perf_counter()
    found = [algo.query(q, k) for q in Q]
    return time.perf_counter() - start, np.stack(found)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist-784-euclidean")
    parser.add_argument("--nlist", type=int, default=1024, help="coarse lists, shared by every index")
    parser.add_argument("--mode", choices=["batch", "single"], default="batch")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 6, 8, 10, 12, 16, 24, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", type=float, nargs="+", default=[0.95], help="recall@10 targets")
    parser.add_argument("--only", nargs="*", help="names (substrings) of the indexes to run")
    parser.add_argument("--out", help="also write the rows as JSON here")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)

    set_threads(1)
    ds = load(args.dataset, quiet=args.quiet)
    X, Q, k = ds.train, ds.test[:args.queries], 10
    built, runs = {}, []
    for name, (make, params) in INDEXES.items():
        if args.only and not any(s in name for s in args.only):
            continue
        base = name.removesuffix(" m=4")
        if base not in built:
            built[base] = make(ds.dim, ds.metric, args.nlist)
            built[base].prepare_fit(X)  # the shared k-means, outside every build's time
            start = time.perf_counter()
            built[base].fit(X)
            if not args.quiet:
                print(f"{base}: built in {time.perf_counter() - start:.1f} s, "
                      f"{built[base].bytes_per_vector():.0f} bytes/vector", flush=True)
        runs.append((name, built[base], params))
    rows = []
    for nprobe in tqdm(args.nprobe, desc="nprobe", disable=args.quiet or None):
        best, found = {}, {}
        for _ in range(args.rounds):
            for name, algo, params in runs:
                algo.set_query_arguments(nprobe, *((None, params) if params else ()))
                seconds, found[name] = timed_search(algo, Q, k, args.mode)
                best[name] = min(best.get(name, np.inf), seconds)
        for name, _, _ in runs:
            recall = float(recall_at_k(X, Q, ds.distances[:len(Q)], found[name], k, ds.metric)[0])
            rows.append({"index": name, "nprobe": nprobe, "recall": recall, "qps": len(Q) / best[name]})
    print(f"\n{ds.name}, {args.mode} mode, {len(Q)} queries, 1 thread, shared IVF{args.nlist} centroids\n")
    print("| index | " + " | ".join(f"nprobe {n}" for n in args.nprobe)
          + "".join(f" | QPS at recall {t}" for t in args.target) + " |")
    print("|---|" + "---:|" * (len(args.nprobe) + len(args.target)))
    for name, _, _ in runs:
        mine = [r for r in rows if r["index"] == name]
        cells = " | ".join(f"{r['recall']:.4f} / {r['qps']:,.0f}" for r in mine)
        at = [qps_at(mine, t) for t in args.target]
        print(f"| {name} | {cells} | " + " | ".join("-" if q is None else f"{q:,.0f}" for q in at) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
