"""annvq PQ and LVQ beside faiss IVF-PQ, PQ fast scan and SQ8 on the same centroids, single thread.

    python -m bench.pq_lvq_vs_faiss [--dataset fashion-mnist-784-euclidean] [--queries 1000]

Coarse centroids are trained once (annvq's k-means) and given to every index, annvq's and
faiss's, so each row differs only in its codes and scan. "train" is the codec's training on top
of those centroids (faiss: ``index.train`` with a trained quantizer; annvq: ``codec.fit`` plus the
per-list tables faiss also builds in train); "add" is encoding all train rows. QPS is one batch
of ``--queries`` test queries, the best of ``--repeats`` runs after a warm-up. The summary gives
faiss's QPS at annvq's recall (log-QPS interpolated along faiss's sweep).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from annvq.threads import set_threads

from .datasets import load
from .ivfflat_vs_faiss import best_time
from .metrics import recall_at_k

# (label, annvq spec, rerank factor at search) and (label, faiss builder name, rerank factor)
OURS = [
    ("annvq PQ98x8", "PQ98x8", 0),
    ("annvq PQ196x4fs", "PQ196x4fs,Rerank", 0),
    ("annvq PQ196x4fs+rerank4", "PQ196x4fs,Rerank", 4),
    ("annvq LVQ4x8", "LVQ4x8", 0),
    ("annvq LVQ8", "LVQ8", 0),
]
FAISS = ["faiss PQ98", "faiss PQ196x4fs", "faiss PQ196x4fs+RFlat4", "faiss SQ8"]
#: which faiss row each annvq row is compared with in the summary
PAIRS = {"annvq PQ98x8": "faiss PQ98", "annvq PQ196x4fs": "faiss PQ196x4fs",
         "annvq PQ196x4fs+rerank4": "faiss PQ196x4fs+RFlat4", "annvq LVQ8": "faiss SQ8",
         "annvq LVQ4x8": "faiss SQ8"}


def build_ours(spec: str, X: np.ndarray, centroids: np.ndarray):
    """An annvq Index on the shared centroids: (index, train seconds, add seconds)."""
    from annvq import Index
    from annvq.ivf import nearest_lists

    index = Index(X.shape[1], f"IVF{len(centroids)},{spec}", "l2")
    start = time.perf_counter()
    # what Index.train does after its own k-means, with the shared centroids instead
    index.codec = index.codec.fit(X, centroids, lambda rows: nearest_lists(rows, centroids, "l2", 1)[:, 0])
    index.codec.warmup()
    index.centroids_ = centroids
    index.search(X[:1], 1)  # builds the per-list tables, which faiss builds in train
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    index.add(X)
    return index, train_s, time.perf_counter() - start


def build_faiss(label: str, X: np.ndarray, centroids: np.ndarray):
    """A faiss index on the shared centroids: (index, its IVF part, quantizer, train s, add s)."""
    import faiss

    d, nlist = X.shape[1], len(centroids)
    quantizer = faiss.IndexFlatL2(d)
    quantizer.add(centroids)
    if label == "faiss PQ98":
        index = faiss.IndexIVFPQ(quantizer, d, nlist, 98, 8)
    elif label.startswith("faiss PQ196x4fs"):
        index = faiss.IndexIVFPQFastScan(quantizer, d, nlist, 196, 4)
    else:
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit)
    start = time.perf_counter()
    index.train(X)  # skips the coarse k-means: the quantizer already holds nlist centroids
    train_s = time.perf_counter() - start
    ivf = index
    if label.endswith("RFlat4"):
        index = faiss.IndexRefineFlat(ivf)
        index.k_factor = 4
    start = time.perf_counter()
    index.add(X)
    add_s = time.perf_counter() - start
    return index, ivf, quantizer, train_s, add_s  # the quantizer must outlive the indexes


def faiss_qps_at(recall: float, sweep: list[tuple[float, float]]) -> float | None:
    """faiss's QPS at a given recall, log-linear between its sweep points (None if out of range)."""
    for (r0, q0), (r1, q1) in zip(sweep, sweep[1:]):
        if min(r0, r1) <= recall <= max(r0, r1):
            t = 0.0 if r1 == r0 else (recall - r0) / (r1 - r0)
            return float(np.exp((1 - t) * np.log(q0) + t * np.log(q1)))
    return None


def main(argv=None) -> None:
    from annvq.ivf import train_centroids

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist-784-euclidean")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--centroids", help="a .npy of shared centroids to reuse (skips the k-means)")
    parser.add_argument("--save-centroids", help="write the shared centroids to this .npy")
    parser.add_argument("--only", nargs="*", help="labels (substrings) of the rows to run")
    args = parser.parse_args(argv)

    set_threads(1)  # numba, OpenMP and BLAS
    ds = load(args.dataset)
    X, Q, k = ds.train, ds.test[:args.queries], args.k
    start = time.perf_counter()
    centroids = train_centroids(X, args.nlist, "l2", seed=0) if args.centroids is None else np.load(args.centroids)
    if args.save_centroids:
        np.save(args.save_centroids, centroids)
    print(f"{ds.name}: {len(X)} x {ds.dim}, {len(Q)} queries in one batch, k={k}, 1 thread; "
          f"shared IVF{args.nlist} k-means {time.perf_counter() - start:.1f} s\n")
    print("| index | nprobe | recall@10 | QPS | train s | add s | bytes/vec |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    wanted = lambda label: not args.only or any(s in label for s in args.only)
    sweeps: dict[str, list[tuple[float, float]]] = {}

    def sweep(label, search, train_s, add_s, nbytes):
        sweeps[label] = []
        for nprobe in args.nprobe:
            t, ids = best_time(lambda: search(nprobe), args.repeats)
            r = recall_at_k(X, Q, ds.distances[:len(Q)], ids, k, ds.metric)[0]
            sweeps[label].append((r, len(Q) / t))
            print(f"| {label} | {nprobe} | {r:.4f} | {len(Q) / t:,.0f} | {train_s:.1f} | {add_s:.1f} | "
                  f"{nbytes:g} |", flush=True)

    built = {}
    for label, spec, rerank in OURS:
        if not wanted(label):
            continue
        if spec not in built:
            built[spec] = build_ours(spec, X, centroids)
        index, train_s, add_s = built[spec]
        sweep(label, lambda p: index.search(Q, k, nprobe=p, rerank=rerank)[1], train_s, add_s,
              index.bytes_per_vector)
    built.clear()
    for label in FAISS:
        if not wanted(label):
            continue
        index, ivf, quantizer, train_s, add_s = build_faiss(label, X, centroids)

        def search(p, index=index, ivf=ivf):
            ivf.nprobe = p
            return index.search(Q, k)[1]
        sweep(label, search, train_s, add_s, ivf.code_size)
        del index, ivf, quantizer

    print("\n| annvq | faiss | annvq recall | annvq QPS | faiss QPS at that recall | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for ours, theirs in PAIRS.items():
        if ours not in sweeps or theirs not in sweeps:
            continue
        for r, qps in sweeps[ours]:
            other = faiss_qps_at(r, sweeps[theirs])
            ratio = "n/a" if other is None else f"{qps / other:.2f}x"
            print(f"| {ours} | {theirs} | {r:.4f} | {qps:,.0f} | "
                  f"{'out of range' if other is None else f'{other:,.0f}'} | {ratio} |")


if __name__ == "__main__":
    main()
