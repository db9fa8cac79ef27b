"""Filtered search: an annvq collection beside faiss IVF with an IDSelector, same centroids, 1 thread.

    python -m bench.filtered [--mode batch|single] [--queries N] [--nprobe 4 8 16 ... 1024]

Every train point carries a payload ``{"label": class, "rand": r}``: its class (Fashion-MNIST's
label file, `bench.datasets.fashion_mnist_labels`; on other data sets the nearest of 10 k-means
centroids, so the label follows the data there too) and a seeded uniform integer 0-999. Two
families of filters at selectivities 50%, 10%, 1% and 0.1%:

* ``rand``: ``rand < 500 / 100 / 10 / 1``, independent of the vectors;
* ``label``: ``label in 5 classes``, ``label == c``, ``label == c and rand < 100``,
  ``label == c and rand < 10``: correlated with the data. ``c`` is one fixed class
  (``--label``), so most queries (those of the other classes) have their filtered neighbours
  in lists far from their own.

Recall@10 (the suite's measure, `bench.metrics`) is against the exact top 10 of the matching
rows (faiss.knn over them, re-scored in float64); a returned row that fails the filter counts as
a miss and is reported. annvq runs a collection (``IVF1024,SAQ4`` by default, raw vectors kept)
trained on the shared coarse centroids (`bench.algorithms.base.shared_centroids`) and gets the
filter dict on every call (it caches the row bitset per segment); faiss runs ``IVF1024,Flat``
and ``RR{d},IVF1024,RaBitQ4`` built by the suite's wrapper on the same centroids
(`faiss_cpu.set_coarse_centroids`), with one ``IDSelectorBitmap`` per filter built once, as a
faiss user would, passed in ``SearchParametersIVF`` (``IVFRaBitQSearchParameters`` for RaBitQ).

Timings are interleaved as in `bench.saq_vs_rabitq`: for each filter and nprobe every index runs
once per round, ``--rounds`` rounds, best time kept. An index stops its sweep of a filter once
its recall reaches ``--stop-recall`` (larger nprobe only cost time). The tables give recall / QPS
per nprobe, QPS at ``--target`` recall (`bench.saq_vs_rabitq.qps_at`), the fewest results any
query got (annvq must always return min(k, matching)), and annvq's strategy per nprobe
(`annvq.part_search`: ``ivf`` with the bitset in the scan, ``ivf-raw`` over the raw vectors of
the allowed rows of the probed lists, ``flat`` over the matching rows; a query short of k is
searched again with nprobe doubled, hence ``ivf+flat``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

import annvq

from .algorithms.base import METRICS, as_float32, ivf_metric, prepared, set_threads, shared_centroids
from .algorithms.faiss_cpu import FaissIVF
from .datasets import GT_MARGIN, DatasetError, fashion_mnist_labels, load
from .metrics import distances_to, recall_at_k
from .saq_vs_rabitq import qps_at

K = 10
#: (family, target selectivity, label of the filter)
CASES = [("rand", 0.5, "rand < 500"), ("rand", 0.1, "rand < 100"), ("rand", 0.01, "rand < 10"),
         ("rand", 0.001, "rand < 1"), ("label", 0.5, "label in 5 classes"), ("label", 0.1, "label == c"),
         ("label", 0.01, "label == c, rand < 100"), ("label", 0.001, "label == c, rand < 10")]


# --- data and filters ----------------------------------------------------------------------------
def labels_for(ds, n_classes: int = 10) -> tuple[np.ndarray, str]:
    """(class of every train row, where it came from): Fashion-MNIST's labels, else k-means groups."""
    if ds.name.startswith("fashion-mnist") and len(ds.train) == 60000:
        try:
            return fashion_mnist_labels("train").astype(np.int64), "Fashion-MNIST class"
        except DatasetError:
            pass
    from annvq.ivf import train_centroids

    X = prepared(ds.train, ds.metric)
    C = train_centroids(X, n_classes, ivf_metric(ds.metric), seed=0)
    metric = faiss.METRIC_L2 if ds.metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
    _, nearest = faiss.knn(X, as_float32(C), 1, metric=metric)
    return nearest[:, 0].astype(np.int64), f"nearest of {n_classes} k-means centroids"


def make_cases(label: np.ndarray, rand: np.ndarray, c: int) -> list[dict]:
    """Every filter: its name, target selectivity, the filter in annvq's (Qdrant's) language and
    the numpy mask of the rows it lets through (computed here, independently of annvq)."""
    classes = [(c + i) % 10 for i in range(5)]
    is_c = {"key": "label", "match": {"value": c}}
    out = []
    for family, target, name in CASES:
        if family == "rand":
            bound = int(round(1000 * target))
            must, mask = [{"key": "rand", "range": {"lt": bound}}], rand < bound
        elif target == 0.5:
            must, mask = [{"key": "label", "match": {"any": classes}}], np.isin(label, classes)
            name = f"label in {{{', '.join(map(str, classes))}}}"
        else:
            bound = {0.1: None, 0.01: 100, 0.001: 10}[target]
            must, mask = [is_c], label == c
            if bound is not None:
                must, mask = must + [{"key": "rand", "range": {"lt": bound}}], mask & (rand < bound)
            name = name.replace("== c", f"== {c}")
        out.append({"family": family, "selectivity": target, "name": name, "filter": {"must": must},
                    "mask": mask, "matching": int(mask.sum())})
    return out


def filtered_truth(X: np.ndarray, Q: np.ndarray, mask: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact distances (nq, min(k, matching)) to the nearest matching rows, best first: faiss's
    knn over those rows proposes k + GT_MARGIN candidates, re-scored in float64."""
    rows = np.flatnonzero(mask)
    sub = X[rows]
    depth = min(k + GT_MARGIN, len(rows))
    fmetric = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
    _, cand = faiss.knn(prepared(Q, metric), prepared(sub, metric), depth, metric=fmetric)
    exact = np.sort(distances_to(metric, Q, sub, cand), axis=1)
    return exact[:, :min(k, len(rows))]


# --- the indexes ---------------------------------------------------------------------------------
class AnnvqFiltered:
    """An annvq collection: payloads with indexed ``label`` and ``rand``, trained on the shared
    centroids; the filter dict goes with every query."""

    def __init__(self, spec: str):
        self.spec = spec

    def fit(self, X: np.ndarray, payloads: list[dict], metric: str, path: str) -> None:
        nlist = annvq.parse_spec(self.spec).nlist
        self.col = annvq.Collection.create(path, X.shape[1], spec=self.spec, metric=METRICS[metric],
                                           payload_indexes={"label": "integer", "rand": "integer"},
                                           train_threshold=max(len(X), nlist))
        self.col.upsert(np.arange(len(X)), X, payloads=payloads)
        self.col.train(X, centroids=shared_centroids(prepared(X, metric), nlist, ivf_metric(metric)))
        self.col.warmup()

    def handle(self, case: dict, nprobe: int):
        return case["filter"], nprobe

    def search(self, Q: np.ndarray, k: int, handle):
        filt, nprobe = handle
        return self.col.query(Q, k, nprobe=nprobe, filter=filt)

    @staticmethod
    def unpack(answers: list) -> dict:
        return {"ids": np.concatenate([h.ids for h in answers]),
                "nprobe_used": np.concatenate([h.nprobe for h in answers]),
                "strategies": sorted({h.strategy for h in answers}, key=lambda s: (s.count("+"), s))}

    def close(self) -> None:
        self.col.close()


class FaissFiltered:
    """A faiss IVF index from the suite's wrapper (shared centroids), searched with an
    ``IDSelectorBitmap`` of the filter's rows in its IVF search parameters."""

    def __init__(self, metric: str, factory: str):
        self.algo = FaissIVF(metric, factory)
        self.selectors: dict[str, tuple] = {}

    def fit(self, X: np.ndarray, payloads, metric: str, path: str) -> None:
        self.algo.fit(X)
        self.metric = metric
        self.rabitq = isinstance(faiss.downcast_index(self.algo.ivf), faiss.IndexIVFRaBitQ)
        self.search(as_float32(X[:2]), K, self.handle({"name": "", "mask": np.ones(len(X), bool)}, 1))

    def handle(self, case: dict, nprobe: int):
        if case["name"] not in self.selectors:  # once per filter; the bitmap must outlive it
            bits = np.packbits(case["mask"], bitorder="little")
            self.selectors = {case["name"]: (faiss.IDSelectorBitmap(len(case["mask"]), faiss.swig_ptr(bits)), bits)}
        sel = self.selectors[case["name"]][0]
        nprobe = min(nprobe, self.algo.ivf.nlist)
        if self.rabitq:
            params = faiss.IVFRaBitQSearchParameters(sel=sel, nprobe=nprobe)
            params.qb = faiss.downcast_index(self.algo.ivf).qb
            return params
        return faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)

    def search(self, Q: np.ndarray, k: int, params):
        return self.algo.index.search(prepared(Q, self.metric), k, params=params)[1]

    @staticmethod
    def unpack(answers: list) -> dict:
        return {"ids": np.concatenate(answers)}

    def close(self) -> None:
        self.algo.done()


#: name -> factory taking (metric, dim, nlist)
INDEXES = {
    "annvq SAQ4": lambda metric, d, nlist: AnnvqFiltered(f"IVF{nlist},SAQ4"),
    "faiss Flat": lambda metric, d, nlist: FaissFiltered(metric, f"IVF{nlist},Flat"),
    "faiss RaBitQ4": lambda metric, d, nlist: FaissFiltered(metric, f"RR{d},IVF{nlist},RaBitQ4"),
    "annvq Flat": lambda metric, d, nlist: AnnvqFiltered(f"IVF{nlist},Flat"),
}
DEFAULT_INDEXES = ["annvq SAQ4", "faiss Flat", "faiss RaBitQ4"]


def timed_search(index, Q: np.ndarray, k: int, handle, mode: str) -> tuple[float, dict]:
    """(seconds, unpacked answers) of one pass: one call for the batch, or one per query."""
    if mode == "batch":
        start = time.perf_counter()
        answers = [index.search(Q, k, handle)]
    else:
        start = time.perf_counter()
        answers = [index.search(Q[i:i + 1], k, handle) for i in range(len(Q))]
    seconds = time.perf_counter() - start
    return seconds, index.unpack(answers)


def score(out: dict, case: dict, X, Q, truth, k: int, metric: str) -> dict:
    """Recall@k against the filtered truth, fewest results, and rows returned against the filter."""
    ids = np.asarray(out["ids"], np.int64)
    valid = ids >= 0
    wrong = valid & ~case["mask"][np.where(valid, ids, 0)]
    ids = np.where(wrong, -1, ids)  # a row failing the filter is a miss
    kk = truth.shape[1]
    recall = float(recall_at_k(X, Q, truth, ids[:, :kk], kk, metric)[0]) if kk else 1.0
    row = {"recall": recall, "min_found": int(valid.sum(axis=1).min()), "violations": int(wrong.sum())}
    if "nprobe_used" in out:
        row["mean_nprobe_used"] = float(out["nprobe_used"].mean())
        row["strategy"] = "|".join(out["strategies"])
    return row


# --- report --------------------------------------------------------------------------------------
def _strategy_runs(rows: list[dict]) -> str:
    """annvq's strategy along the sweep, consecutive nprobe values grouped: ``ivf 4-64, flat 128``."""
    runs: list[list] = []
    for r in rows:
        if runs and runs[-1][0] == r["strategy"]:
            runs[-1][2] = r["nprobe"]
        else:
            runs.append([r["strategy"], r["nprobe"], r["nprobe"]])
    return ", ".join(f"{s} {a}" + (f"-{b}" if b != a else "") for s, a, b in runs)


def best_qps(rows: list[dict], target: float) -> float | None:
    """The most QPS at recall >= target along the sweep: `qps_at` assumes QPS falls as nprobe
    grows, which a planner that switches strategy breaks (annvq can be faster at a larger nprobe)."""
    at = qps_at(rows, target)
    reached = [r["qps"] for r in rows if r["recall"] >= target]
    return max([q for q in (at, *reached) if q is not None], default=None)


def _pct(x: float) -> str:
    return f"{100 * x:g}%"


def report(rows: list[dict], cases: list[dict], names: list[str], nprobes: list[int], target: float,
           header: str) -> str:
    lines = [header, "",
             "| filter | matching | index | " + " | ".join(f"nprobe {n}" for n in nprobes)
             + f" | QPS at recall {target} | min found | annvq strategy |",
             "|---|---:|---|" + "---:|" * (len(nprobes) + 2) + "---|"]
    summary = {}
    for case in cases:
        for name in names:
            mine = [r for r in rows if r["filter"] == case["name"] and r["index"] == name]
            if not mine:
                continue
            by = {r["nprobe"]: r for r in mine}
            cells = " | ".join(f"{by[n]['recall']:.4f} / {by[n]['qps']:,.0f}" if n in by else "-" for n in nprobes)
            at = qps_at(mine, target)
            summary[case["name"], name] = at, best_qps(mine, target)
            strategy = _strategy_runs(mine) if "strategy" in mine[0] else ""
            lines.append(f"| {case['name']} | {case['matching']:,} ({_pct(case['selectivity'])}) | {name} | {cells} | "
                         f"{'-' if at is None else f'{at:,.0f}'} | {min(r['min_found'] for r in mine)} | {strategy} |")
    pairs = [(a, b) for a in names if a.startswith("annvq") for b in names if not b.startswith("annvq")]
    lines += ["", f"QPS at recall {target} (qps_at; in brackets the best QPS of any nprobe reaching it, where "
              "higher)" + (" and the ratios annvq / faiss" if pairs else "") + ":", "",
              "| filter | selectivity | " + " | ".join(names) + "".join(f" | {a} / {b}" for a, b in pairs) + " |",
              "|---|---:|" + "---:|" * (len(names) + len(pairs))]

    def cell(at, best, fmt):
        if at is None and best is None:
            return "-"
        text = "-" if at is None else format(at, fmt)
        return text + (f" ({format(best, fmt)})" if best is not None and (at is None or best > 1.005 * at) else "")

    for case in cases:
        got = {n: summary.get((case["name"], n), (None, None)) for n in names}
        cells = " | ".join(cell(*got[n], ",.0f") for n in names)
        ratios = ""
        for a, b in pairs:
            (at_a, best_a), (at_b, best_b) = got[a], got[b]
            ratios += " | " + cell(None if at_a is None or at_b is None else at_a / at_b,
                                   None if best_a is None or best_b is None else best_a / best_b, ".2f")
        lines.append(f"| {case['name']} | {_pct(case['selectivity'])} | {cells}{ratios} |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist-784-euclidean")
    parser.add_argument("--mode", choices=["batch", "single"], default="batch")
    parser.add_argument("--queries", type=int, help="first N test queries (default 1000 batch, 300 single)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128, 256, 512, 1024])
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--stop-recall", type=float, default=0.995,
                        help="an index stops its nprobe sweep of a filter once its recall reaches this")
    parser.add_argument("--label", type=int, default=0, help="the class c of the label filters")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random payload 'rand'")
    parser.add_argument("--only", nargs="*", help="names (substrings) of the indexes to run; default: "
                        + ", ".join(DEFAULT_INDEXES) + f"; known: {', '.join(INDEXES)}")
    parser.add_argument("--filters", nargs="*", help="names (substrings) of the filters to run")
    parser.add_argument("--out", help="also write the rows as JSON here")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)

    set_threads(1)
    ds = load(args.dataset, quiet=args.quiet)
    nq = args.queries or (1000 if args.mode == "batch" else 300)
    X, Q, k = ds.train, as_float32(ds.test[:nq]), K
    label, label_source = labels_for(ds)
    rand = np.random.default_rng(args.seed).integers(0, 1000, len(X))
    payloads = [{"label": int(a), "rand": int(b)} for a, b in zip(label.tolist(), rand.tolist())]
    cases = make_cases(label, rand, args.label)
    if args.filters:
        cases = [c for c in cases if any(s in c["name"] for s in args.filters)]
    nprobes = sorted({min(n, args.nlist) for n in args.nprobe})
    names = [n for n in INDEXES if (any(s in n for s in args.only) if args.only else n in DEFAULT_INDEXES)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="annvq-filtered-") as tmp:
        built = {}
        for name in names:
            start = time.perf_counter()
            built[name] = INDEXES[name](ds.metric, ds.dim, args.nlist)
            built[name].fit(X, payloads, ds.metric, f"{tmp}/{name.replace(' ', '-')}")
            if not args.quiet:
                print(f"{name}: built in {time.perf_counter() - start:.1f} s", flush=True)
        for case in cases:  # annvq's filter evaluation against numpy's mask, once per filter
            for name in (n for n in names if isinstance(built[n], AnnvqFiltered)):
                count = built[name].col.count_matching(case["filter"])
                if count != case["matching"]:
                    raise AssertionError(f"{case['name']}: annvq counts {count} matching points, "
                                         f"numpy {case['matching']}.")
        bar = tqdm(total=len(cases) * len(nprobes), desc="filter x nprobe", disable=args.quiet or None)
        for case in cases:
            truth = filtered_truth(X, Q, case["mask"], k, ds.metric)
            active = list(names)
            for name in active:  # untimed: the filter's bitset, selectors, kernels of both strategies
                for nprobe in (nprobes[0], nprobes[-1]):
                    built[name].search(Q[:2], k, built[name].handle(case, nprobe))
            for nprobe in nprobes:
                if not active:
                    bar.update(1)
                    continue
                handles = {name: built[name].handle(case, nprobe) for name in active}
                best, found = {}, {}
                for _ in range(args.rounds):
                    for name in active:
                        seconds, found[name] = timed_search(built[name], Q, k, handles[name], args.mode)
                        best[name] = min(best.get(name, np.inf), seconds)
                for name in list(active):
                    row = {"filter": case["name"], "family": case["family"], "selectivity": case["selectivity"],
                           "matching": case["matching"], "index": name, "nprobe": nprobe, "qps": len(Q) / best[name],
                           **score(found[name], case, X, Q, truth, k, ds.metric)}
                    rows.append(row)
                    if row["recall"] >= args.stop_recall:
                        active.remove(name)
                bar.update(1)
        bar.close()
        for index in built.values():
            index.close()
    header = (f"{ds.name}, {args.mode} mode, {len(Q)} queries, k={k}, 1 thread, shared IVF{args.nlist} centroids, "
              f"best of {args.rounds} interleaved rounds; label = {label_source}, c = {args.label}; "
              f"rand = uniform 0-999 (seed {args.seed}); cells: recall@{k} / QPS")
    print("\n" + report(rows, cases, names, nprobes, args.target, header))
    short = [r for r in rows if r["index"].startswith("annvq") and r["min_found"] < min(k, r["matching"])]
    wrong = [r for r in rows if r["violations"]]
    print(f"\nannvq returned min(k, matching) results for every query at every nprobe: {'no' if short else 'yes'}"
          + "".join(f"\n  SHORT: {r['index']}, {r['filter']}, nprobe {r['nprobe']}: min found {r['min_found']}"
                    for r in short))
    print(f"rows failing the filter returned: {sum(r['violations'] for r in wrong)}"
          + "".join(f"\n  WRONG: {r['index']}, {r['filter']}, nprobe {r['nprobe']}: {r['violations']}" for r in wrong))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
