"""Markdown table: the best QPS each algorithm reaches at recall@k >= 0.90, 0.95 and 0.99."""

from __future__ import annotations

from . import results

THRESHOLDS = (0.90, 0.95, 0.99)


def _number(value, digits=0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(paths, thresholds=THRESHOLDS) -> str:
    """The table for the records of ``paths``, best QPS at the middle threshold first."""
    records = results.load(paths)
    if not records:
        raise ValueError(f"no results in {paths}")
    first = records[0]
    rows = []
    for algorithm, group in results.by_algorithm(records).items():
        qps = [results.qps_at_recall(group, t) for t in thresholds]
        rows.append((algorithm, group[0]["bytes_per_vector"], group[0]["build_time_s"], qps,
                     max(r["recall"] for r in group)))
    middle = len(thresholds) // 2
    rows.sort(key=lambda row: (row[3][middle] is None, -(row[3][middle] or 0), -row[4]))
    k = first["count"]
    lines = [
        f"{first['dataset']}: {first['mode']} queries, {first['threads']} thread(s), "
        f"{first['n_queries']} queries, k={k}, best of {first['runs']} runs.",
        "",
        "| algorithm | bytes/vector | build (s) | " + " | ".join(f"QPS @ recall>={t:.2f}" for t in thresholds)
        + f" | max recall@{k} |",
        "|---|---:|---:|" + "---:|" * len(thresholds) + "---:|",
    ]
    for algorithm, size, build, qps, best in rows:
        lines.append(f"| {algorithm} | {_number(size, 1)} | {_number(build, 1)} | "
                     + " | ".join(_number(q) for q in qps) + f" | {best:.4f} |")
    return "\n".join(lines) + "\n"
