"""Quantization-error bench: how well each codec estimates squared L2 distances, and encode time.

    python -m bench.error [--dataset fashion-mnist-784-euclidean] [--nlist 1024] [--nprobe 32]
                          [--bits 0.5,1,2,4,8] [--methods SAQ,CAQ,rabitqlib] [--queries 1000]

The SAQ paper's measure (docs/algorithms.md §1.4): the relative error ``|d^2_est - d^2| / d^2`` averaged
over every probed (query, candidate) pair ("pairs"), and over queries of their own pair averages
("queries"). annvq codecs are scored in exact arithmetic through ``codec.estimate``; rabitqlib's
``IvfIndex`` only returns its top-100, so every method is also scored on its returned top-100
("top100"). All methods share one coarse partition (annvq's k-means, seed 0) and one thread
count; ``encode_s`` times encoding alone (rabitqlib: ``build`` with exact quantization). An
angular dataset is normalised first: on unit vectors d^2 = 2 (1 - cos), which is what SAQ's and
CAQ's cosine scan estimates (docs/algorithms.md §9), so its relative error is the cosine distance's.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm.auto import tqdm

from annvq import Index
from annvq.ivf import InvertedLists, nearest_lists, train_centroids
from annvq.quantizers import make_codec
from annvq.threads import set_threads

from .datasets import load

METHODS = ("SAQ", "CAQ", "rabitqlib")
#: results per query scored on the "top100" measure, as rabitqlib returns them
TOP = 100
#: A pair nearer than this fraction of ||q||^2 + ||x||^2 is one point twice: pydocs-256-angular
#: has 5 test sentences whose embedding is a training row's (WordLlama averages token vectors, so
#: reordered words embed alike), where float rounding left d^2 ~ 1e-15 and the mean rel. error 1e17%.
DUPLICATE = 1e-9


def codec_name(method: str, bits: float) -> str | None:
    """The annvq codec part for a method and budget; None where the method has no such code."""
    if method == "SAQ":
        return f"SAQ{bits:g}"
    if method == "CAQ" and float(bits).is_integer():
        return f"CAQ{int(bits)}"
    return None


def relative_errors(est_sq: np.ndarray, X: np.ndarray, Q: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """|est - d^2| / d^2 of every (query i, row ids[i, j]) pair, (nq, k) float64, with d^2 the exact
    ||q_i - x||^2; NaN where the pair is one point twice (d^2 below DUPLICATE of ||q||^2 + ||x||^2),
    whose relative error is undefined."""
    rows, queries = X[ids].astype(np.float64), Q[:, None, :].astype(np.float64)
    true = ((rows - queries) ** 2).sum(axis=2)
    distinct = true > DUPLICATE * ((rows ** 2).sum(axis=2) + (queries ** 2).sum(axis=2))
    return np.where(distinct, np.abs(est_sq - true) / np.where(distinct, true, 1.0), np.nan)


def pair_errors(index: Index, X: np.ndarray, Q: np.ndarray, probes: np.ndarray,
                quiet: bool = False) -> tuple[float, float, int]:
    """(pair-average, query-average, pairs) relative error over every probed (query, row) pair
    (duplicate pairs left out, `relative_errors`)."""
    lists, codec = index.lists, index.codec
    err_sum, count = np.zeros(len(Q)), np.zeros(len(Q))
    for lst in tqdm(np.unique(probes), desc=f"error {codec.spec}", leave=False, disable=quiet or None):
        a, b = lists.offsets[lst], lists.offsets[lst + 1]
        queries = np.flatnonzero((probes == lst).any(axis=1))
        if a == b or not len(queries):
            continue
        est = codec.estimate(Q[queries], index.centroids_[lst], lists.codes[a:b], lists.factors[a:b])
        rel = relative_errors(est, X, Q[queries], np.broadcast_to(lists.ids[a:b], (len(queries), b - a)))
        err_sum[queries] += np.nansum(rel, axis=1)
        count[queries] += (~np.isnan(rel)).sum(axis=1)
    return float(err_sum.sum() / count.sum()), float(np.mean(err_sum / np.maximum(count, 1))), int(count.sum())


def top_errors(est_sq: np.ndarray, ids: np.ndarray, X: np.ndarray, Q: np.ndarray) -> float:
    """Mean relative error of returned squared-distance estimates against the truth (duplicate
    pairs left out, `relative_errors`)."""
    valid = ids >= 0
    return float(np.nanmean(relative_errors(est_sq, X, Q, np.where(valid, ids, 0))[valid]))


def annvq_row(spec: str, X, Q, centroids, assign, probes, nprobe, seed, quiet=False) -> dict:
    nlist = len(centroids)
    codec = make_codec(spec, X.shape[1], "l2", seed=seed).fit(X, centroids, lambda rows: nearest_lists(
        rows, centroids, "l2", 1)[:, 0])
    codec.warmup()
    start = time.perf_counter()
    codes, factors = codec.encode(X, centroids, assign)
    encode_s = time.perf_counter() - start
    lists = InvertedLists.from_rows(nlist, assign, np.arange(len(X)), codes, factors)
    meta, arrays = codec.state()
    index = Index.from_state({"dim": X.shape[1], "spec": f"IVF{nlist},{spec}", "metric": "l2",
                              "store_vectors": False, "seed": seed, "codec": meta},
                             {"centroids": centroids, **{f"codec.{k}": v for k, v in arrays.items()}}, lists)
    pairs, per_query, n_pairs = pair_errors(index, X, Q, probes, quiet)
    D, I = index.search(Q, TOP, nprobe=nprobe, params={"prune": 0})
    return {"plan": codec.plan_, "bytes_per_vector": index.bytes_per_vector, "encode_s": encode_s,
            "rel_error_pairs": pairs, "rel_error_queries": per_query, "pairs": n_pairs,
            "rel_error_top100": top_errors(D.astype(np.float64) ** 2, I, X, Q)}


def rabitqlib_row(bits: int, X, Q, centroids, assign, nprobe, threads) -> dict:
    import rabitqlib

    index = rabitqlib.IvfIndex(dim=X.shape[1], max_elements=len(X), num_clusters=len(centroids),
                               nbits=bits, metric="l2")
    start = time.perf_counter()
    index.build(X, centroids, assign.astype(np.uint32), num_threads=threads, fast_quantization=False)
    encode_s = time.perf_counter() - start
    ids, dists = index.search(Q, k=TOP, nprobe=nprobe, num_threads=threads)
    ids = np.where(ids == np.iinfo(np.uint32).max, -1, ids.astype(np.int64))
    return {"encode_s": encode_s, "rel_error_top100": top_errors(dists.astype(np.float64), ids, X, Q)}


def run_error_bench(dataset: str = "fashion-mnist-784-euclidean", nlist: int = 1024, nprobe: int = 32,
                    bits=(0.5, 1, 2, 4, 8), methods=("SAQ", "CAQ"), n_queries: int = 1000,
                    threads: int = 1, seed: int = 0, quiet: bool = False) -> list[dict]:
    """One row per (method, bits): relative errors, bytes per vector and encode seconds."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"Unknown method(s) {sorted(unknown)}; known: {', '.join(METHODS)}.")
    set_threads(threads)
    ds = load(dataset, quiet=quiet)
    X = np.ascontiguousarray(ds.train, dtype=np.float32)
    Q = np.ascontiguousarray(ds.test[:n_queries], dtype=np.float32)
    if ds.metric == "angular":  # unit vectors: d^2 = 2 (1 - cos), the estimate SAQ's cosine scan makes
        X, Q = (np.ascontiguousarray(A / np.linalg.norm(A, axis=1, keepdims=True)) for A in (X, Q))
    centroids = train_centroids(X, nlist, "l2", seed=seed)
    assign = nearest_lists(X, centroids, "l2", 1)[:, 0]
    probes = nearest_lists(Q, centroids, "l2", nprobe)
    rows = []
    for method in methods:
        for b in bits:
            base = {"dataset": dataset, "method": method, "bits": b, "nlist": nlist, "nprobe": nprobe,
                    "queries": len(Q), "threads": threads}
            if method == "rabitqlib":
                if not float(b).is_integer():
                    continue
                rows.append(base | rabitqlib_row(int(b), X, Q, centroids, assign, nprobe, threads))
            elif spec := codec_name(method, b):
                rows.append(base | annvq_row(spec, X, Q, centroids, assign, probes, nprobe, seed, quiet))
    return rows


def format_rows(rows: list[dict]) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.4f}%"

    lines = [f"{'method':<10} {'bits':>5} {'B/vec':>7} {'pairs':>10} {'queries':>10} {'top100':>10} {'encode_s':>9}"]
    for r in rows:
        lines.append(f"{r['method']:<10} {r['bits']:>5g} {r.get('bytes_per_vector', float('nan')):>7g} "
                     f"{pct(r.get('rel_error_pairs')):>10} {pct(r.get('rel_error_queries')):>10} "
                     f"{pct(r.get('rel_error_top100')):>10} {r['encode_s']:>9.3f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.error", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist-784-euclidean")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--bits", default="0.5,1,2,4,8", help="comma-separated bits per dimension")
    parser.add_argument("--methods", default="SAQ,CAQ", help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    rows = run_error_bench(args.dataset, args.nlist, args.nprobe, [float(b) for b in args.bits.split(",")],
                           args.methods.split(","), args.queries, args.threads, quiet=args.quiet)
    print(format_rows(rows))


if __name__ == "__main__":
    main()
