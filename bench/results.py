"""Benchmark result files (one JSON list of records plus the same rows as CSV) and the Pareto
frontier that plots and reports read from them."""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from pathlib import Path

#: CSV columns, in order (the JSON records hold the same keys)
FIELDS = [
    "dataset", "metric", "count", "mode", "threads", "build_threads", "runs", "n_queries",
    "family", "algorithm", "query_args", "label", "build_time_s", "index_size_kb",
    "bytes_per_vector", "recall", "qps", "mean_latency_ms", "p50_ms", "p95_ms", "p99_ms",
    "timestamp",
]


def results_path(results_dir, dataset: str, *, batch: bool, threads: int, count: int,
                 n_queries: int | None) -> Path:
    """One file per dataset, mode, thread count, k and query subset, so runs never mix."""
    mode = "batch" if batch else "single"
    subset = f"-q{n_queries}" if n_queries else ""
    return Path(results_dir) / f"{dataset}-{mode}-t{threads}-k{count}{subset}.json"


def key(algorithm: str, query_args) -> tuple:
    """What identifies a measurement for resuming: the algorithm and its query arguments."""
    return algorithm, json.dumps(query_args, sort_keys=True)


def record_key(record: dict) -> tuple:
    return key(record["algorithm"], record["query_args"])


def load(paths) -> list[dict]:
    """All records of one or more result files (a missing file has none)."""
    records = []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(path)
        if path.exists():
            records.extend(json.loads(path.read_text()))
    return records


def save(path: Path, records: list[dict]) -> None:
    """Write the JSON and CSV files whole, each through a temp file and a rename, so an
    interrupted run leaves the previous complete files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(records, indent=1))
    os.replace(tmp, path)
    csv_path, tmp = path.with_suffix(".csv"), path.with_suffix(f".csv.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({**record, "query_args": json.dumps(record["query_args"])})
    os.replace(tmp, csv_path)


def by_algorithm(records: list[dict]) -> dict[str, list[dict]]:
    groups = defaultdict(list)
    for record in records:
        groups[record["algorithm"]].append(record)
    return dict(groups)


def pareto_frontier(records: list[dict]) -> list[dict]:
    """The records no other record beats on both recall and QPS, by increasing recall."""
    front, best_qps = [], -1.0
    for record in sorted(records, key=lambda r: (-r["recall"], -r["qps"])):
        if record["qps"] > best_qps:
            front.append(record)
            best_qps = record["qps"]
    return front[::-1]


def qps_at_recall(records: list[dict], target: float) -> float | None:
    """The best QPS among records with recall >= target, or None when none reaches it."""
    qps = [r["qps"] for r in records if r["recall"] >= target]
    return max(qps) if qps else None
