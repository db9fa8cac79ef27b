"""Run algorithm definitions on a dataset the way ann-benchmarks does, and record the results.

For each build: ``fit`` on the train set (timed: build time; memory growth: index size), then for
each query-argument set, ``runs`` timed passes over the test queries, keeping the best:

* single-query mode: every query timed alone (``query``); QPS = queries / summed time of the best
  pass, latency percentiles from that pass;
* batch mode: all queries in one ``batch_query`` call; QPS = queries / best call time (no
  per-query latencies exist, so the percentiles are left empty).

Recall@k is ann-benchmarks' (``bench.metrics``: distances recomputed, k-th true distance + 1e-3).
Results go to ``results/{dataset}-{mode}-t{threads}-k{count}[-q{n}].json`` and ``.csv``, saved
after every measurement; a rerun skips what a file already holds.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import algorithms, results
from .algorithms.base import set_threads
from .config import Definition, default_config, load_definitions
from .datasets import load
from .metrics import recall_at_k

log = logging.getLogger(__name__)


def id_matrix(found, k: int) -> np.ndarray:
    """Results as an (nq, k) int64 array, short rows padded with -1 (a missing neighbour)."""
    out = np.full((len(found), k), -1, dtype=np.int64)
    for i, row in enumerate(found):
        row = np.asarray(row, dtype=np.int64)[:k]
        out[i, :len(row)] = row
    return out


def time_single(algo, Q: np.ndarray, k: int, runs: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, per-query seconds of the fastest pass), each query timed alone."""
    best, best_times, found = np.inf, None, None
    for _ in range(runs):
        times, rows = np.empty(len(Q)), []
        for i, q in enumerate(Q):
            start = time.perf_counter()
            rows.append(algo.query(q, k))
            times[i] = time.perf_counter() - start
        if times.sum() < best:
            best, best_times, found = times.sum(), times, rows
    return id_matrix(found, k), best_times


def time_batch(algo, Q: np.ndarray, k: int, runs: int) -> tuple[np.ndarray, float]:
    """(ids, seconds of the fastest ``batch_query`` call)."""
    best = np.inf
    for _ in range(runs):
        start = time.perf_counter()
        algo.batch_query(Q, k)
        best = min(best, time.perf_counter() - start)
    return id_matrix(algo.get_batch_results(), k), best


def _call(method, args) -> None:
    method(**args) if isinstance(args, dict) else method(*args)


def _jsonable(args):
    return dict(args) if isinstance(args, dict) else list(args)


class Run:
    """One benchmark run: a dataset, a mode, thread counts and the result file they map to."""

    def __init__(self, dataset, *, runs: int = 5, batch: bool = False, threads: int = 1,
                 build_threads: int | None = None, count: int = 10, n_queries: int | None = None,
                 results_dir="results", datasets_dir="datasets", quiet: bool = False):
        self.ds = load(dataset, out_dir=datasets_dir, quiet=quiet)
        self.Q, self.true_distances = self.ds.test, self.ds.distances
        if n_queries and n_queries < len(self.Q):
            self.Q, self.true_distances = self.Q[:n_queries], self.true_distances[:n_queries]
        else:
            n_queries = None
        self.runs, self.batch, self.count, self.quiet = runs, batch, count, quiet
        self.threads, self.build_threads = threads, build_threads or threads
        self.path = results.results_path(results_dir, self.ds.name, batch=batch, threads=threads,
                                         count=count, n_queries=n_queries)
        self.records = results.load(self.path)
        self.done = {results.record_key(r) for r in self.records}

    def pending(self, algorithm: str, definition: Definition) -> list:
        return [qa for qa in definition.query_args
                if results.key(algorithm, _jsonable(qa)) not in self.done]

    def execute(self, definitions: list[Definition]) -> Path:
        total = sum(len(d.query_args) for d in definitions)
        with tqdm(total=total, desc=self.ds.name, unit="config", disable=self.quiet) as bar:
            for definition in definitions:
                self._build_and_measure(definition, bar)
        return self.path

    def _build_and_measure(self, definition: Definition, bar) -> None:
        try:
            cls = algorithms.get(definition.constructor)
            algo = cls(*definition.args, **definition.kwargs)
            algorithm = f"{algo.name} {algo.build_label()}"
        except Exception as exc:  # a spec or library this machine cannot build: skip, keep going
            log.warning("skipping %s%s: %s", definition.constructor, definition.args, exc)
            bar.update(len(definition.query_args))
            return
        todo = self.pending(algorithm, definition)
        bar.update(len(definition.query_args) - len(todo))
        if not todo:
            return
        bar.set_postfix_str(algorithm)
        set_threads(self.build_threads)
        try:
            algo.prepare_fit(self.ds.train)
            memory = algo.get_memory_usage()
            start = time.perf_counter()
            algo.fit(self.ds.train)
        except Exception as exc:
            log.warning("skipping %s: build failed: %s", algorithm, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            bar.update(len(todo))
            return
        build = {"build_time_s": time.perf_counter() - start,
                 "index_size_kb": max(0.0, (algo.get_memory_usage() or 0) - (memory or 0))}
        set_threads(self.threads)
        for query_args in todo:
            try:
                _call(algo.set_query_arguments, query_args)
                record = self.measure(algo, algorithm, query_args, build)
            except Exception as exc:
                log.warning("skipping %s %s: %s", algorithm, query_args, exc)
            else:
                self.records.append(record)
                self.done.add(results.record_key(record))
                results.save(self.path, self.records)
            bar.update(1)
        algo.done()

    def measure(self, algo, algorithm: str, query_args, build: dict) -> dict:
        """Time the queries under the current query arguments and score them."""
        if self.batch:
            ids, seconds = time_batch(algo, self.Q, self.count, self.runs)
            latencies = None
        else:
            ids, latencies = time_single(algo, self.Q, self.count, self.runs)
            seconds = latencies.sum()
        recall, _ = recall_at_k(self.ds.train, self.Q, self.true_distances, ids, self.count, self.ds.metric)
        pct = (lambda p: None) if latencies is None else (lambda p: float(np.percentile(latencies, p) * 1e3))
        return {
            "dataset": self.ds.name, "metric": self.ds.metric, "count": self.count,
            "mode": "batch" if self.batch else "single", "threads": self.threads,
            "build_threads": self.build_threads, "runs": self.runs, "n_queries": len(self.Q),
            "family": algo.name, "algorithm": algorithm, "query_args": _jsonable(query_args),
            "label": str(algo), **build, "bytes_per_vector": algo.bytes_per_vector(),
            "recall": recall, "qps": len(self.Q) / seconds, "mean_latency_ms": seconds / len(self.Q) * 1e3,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


def run(dataset, *, algorithms: list[str] | None = None, config=None, runs: int = 5,
        batch: bool = False, threads: int = 1, build_threads: int | None = None, count: int = 10,
        n_queries: int | None = None, results_dir="results", datasets_dir="datasets",
        quiet: bool = False) -> Path:
    """Benchmark every selected definition of ``config`` (default: the dataset family's) on
    ``dataset`` (a catalogue name or an .hdf5 path); returns the results JSON path."""
    bench = Run(dataset, runs=runs, batch=batch, threads=threads, build_threads=build_threads,
                count=count, n_queries=n_queries, results_dir=results_dir,
                datasets_dir=datasets_dir, quiet=quiet)
    config = Path(config) if config else default_config(bench.ds.name)
    definitions = load_definitions(config, bench.ds.metric, bench.ds.dim, count, algorithms=algorithms)
    if not definitions:
        log.warning("no enabled definition in %s matches %s", config, algorithms)
    return bench.execute(definitions)
