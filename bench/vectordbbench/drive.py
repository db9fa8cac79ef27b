"""Run VectorDBBench's custom-dataset case against ``annvq serve``; runs in VectorDBBench's own
Python (after `register`), imports nothing of annvq. Prints one JSON line per case: load
(insert + optimize) durations, serial QPS and p99, recall, concurrent QPS per concurrency.

    python drive.py --url http://127.0.0.1:8000 --dataset-dir data/vdb/fmnist --label 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

#: what each case reports, from VectorDBBench's `Metric`
REPORTED = ("insert_duration", "optimize_duration", "load_duration", "qps", "serial_latency_p99",
            "serial_latency_p50", "recall", "ndcg", "conc_num_list", "conc_qps_list", "conc_latency_p99_list")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--dataset-dir", type=Path, required=True, help="bench.vectordbbench.export's output.")
    p.add_argument("--results-dir", type=Path, required=True, help="VectorDBBench's result files go here.")
    p.add_argument("--spec", default="IVF1024,SAQ4")
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--label", type=float, nargs="*", default=[],
                   help="Also a label-filter case per fraction (the dataset must have that label).")
    p.add_argument("--concurrency", type=int, nargs="*", default=[1, 2, 4])
    p.add_argument("--duration", type=int, default=20, help="Seconds per concurrency level.")
    p.add_argument("--insert-batch-size", type=int, default=None, help="Rows per insert (VectorDBBench's default).")
    args = p.parse_args(argv)
    os.environ["RESULTS_LOCAL_DIR"] = str(args.results_dir.resolve())  # read when vectordb_bench is imported

    from vectordb_bench.backend.cases import CaseType
    from vectordb_bench.backend.clients import DB
    from vectordb_bench.backend.clients.annvq.config import AnnvqConfig, AnnvqIndexConfig
    from vectordb_bench.interface import benchmark_runner
    from vectordb_bench.models import CaseConfig, ConcurrencySearchConfig, TaskConfig

    info = json.loads((args.dataset_dir / "dataset.json").read_text())
    dataset = {"name": args.dataset_dir.name, "dir": str(args.dataset_dir.resolve()), "size": info["size"],
               "dim": info["dim"], "metric_type": info["metric_type"], "file_count": 1, "use_shuffled": False,
               "with_gt": True}
    out = []
    for label in [None, *args.label]:
        case = {"name": f"annvq {args.spec}" + (f" label {label}" if label else ""), "description": "",
                "load_timeout": 3600, "optimize_timeout": 3600, "dataset_config": dataset}
        if label:
            case |= {"use_filter": True, "label_percentage": label}
        batch = {"insert_batch_size": args.insert_batch_size} if args.insert_batch_size else {}
        task = TaskConfig(
            **batch, db=DB.Annvq, db_config=AnnvqConfig(db_label=args.spec, url=args.url),
            db_case_config=AnnvqIndexConfig(spec=args.spec, nprobe=args.nprobe),
            case_config=CaseConfig(case_id=CaseType.PerformanceCustomDataset, k=args.k, custom_case=case,
                                   concurrency_search_config=ConcurrencySearchConfig(
                                       num_concurrency=args.concurrency, concurrency_duration=args.duration)))
        tag = f"annvq-{int(time.time())}"
        benchmark_runner.run([task], tag)
        while benchmark_runner.has_running():
            time.sleep(1)
        if benchmark_runner.latest_error:
            raise SystemExit(f"VectorDBBench failed: {benchmark_runner.latest_error}")
        found = [r for t in benchmark_runner.get_results(args.results_dir.resolve()) if t.task_label == tag
                 for r in t.results]
        if not found:
            raise SystemExit(f"VectorDBBench wrote no result for {tag} under {args.results_dir}")
        metrics = found[0].metrics.__dict__
        row = {"case": case["name"], "k": args.k, "nprobe": args.nprobe, "insert_batch_size": task.insert_batch_size,
               "load_concurrency": task.load_concurrency, **{key: metrics[key] for key in REPORTED}}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


if __name__ == "__main__":
    main()
