"""annvq ``IVF1024,Flat`` beside faiss ``IndexIVFFlat`` on the same centroids, single thread.

    python -m bench.ivfflat_vs_faiss [--dataset fashion-mnist-784-euclidean] [--repeats 3]

Both indexes hold the same lists: faiss's coarse quantizer is filled with annvq's trained
``centroids_`` and both get the same train rows, so the comparison is the scan alone plus
each side's coarse search. All test queries go in one batch; QPS is the best of ``--repeats``
timed runs after an untimed warm-up (numba compilation is outside the timing). Recall is
ann-benchmarks' k-nn recall (distances recomputed against the train set).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from annvq.threads import set_threads

from .datasets import load
from .metrics import recall_at_k


def best_time(search, repeats: int) -> tuple[float, np.ndarray]:
    """(fastest wall time of `repeats` runs, ids of the last run) after one warm-up run."""
    search()
    best, ids = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        ids = search()
        best = min(best, time.perf_counter() - start)
    return best, ids


def main(argv=None) -> None:
    import faiss

    from annvq import Index

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist-784-euclidean")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    set_threads(1)  # numba, OpenMP and BLAS
    ds = load(args.dataset)
    if ds.index_metric != "l2":
        parser.error("this comparison uses IndexIVFFlat with L2; pick a euclidean dataset")
    Q, k = ds.test, args.k

    start = time.perf_counter()
    index = Index(ds.dim, f"IVF{args.nlist},Flat", "l2").train(ds.train).add(ds.train)
    build_s = time.perf_counter() - start

    quantizer = faiss.IndexFlatL2(ds.dim)
    quantizer.add(index.centroids_)
    ivf = faiss.IndexIVFFlat(quantizer, ds.dim, args.nlist, faiss.METRIC_L2)
    ivf.is_trained = True  # the quantizer already holds the trained centroids
    ivf.add(ds.train)
    sizes = np.array([ivf.invlists.list_size(i) for i in range(args.nlist)])
    same_lists = np.array_equal(sizes, index.lists.list_sizes())

    print(f"{ds.name}: {len(ds.train)} train x {ds.dim} dims, {len(Q)} queries in one batch, k={k}, "
          f"1 thread (numba and faiss); annvq train+add {build_s:.1f} s; "
          f"list sizes identical to faiss: {same_lists}\n")
    print("| nprobe | annvq recall@10 | faiss recall@10 | annvq QPS | faiss QPS | annvq / faiss |")
    print("|---:|---:|---:|---:|---:|---:|")
    for nprobe in args.nprobe:
        t_ours, ids_ours = best_time(lambda: index.search(Q, k, nprobe=nprobe)[1], args.repeats)
        ivf.nprobe = nprobe
        t_faiss, ids_faiss = best_time(lambda: ivf.search(Q, k)[1], args.repeats)
        r_ours = recall_at_k(ds.train, Q, ds.distances, ids_ours, k, ds.metric)[0]
        r_faiss = recall_at_k(ds.train, Q, ds.distances, ids_faiss, k, ds.metric)[0]
        qps_ours, qps_faiss = len(Q) / t_ours, len(Q) / t_faiss
        print(f"| {nprobe} | {r_ours:.4f} | {r_faiss:.4f} | {qps_ours:,.0f} | {qps_faiss:,.0f} | "
              f"{qps_ours / qps_faiss:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
