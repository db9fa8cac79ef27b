"""VectorDBBench against ``annvq serve`` on Fashion-MNIST, end to end.

    python -m bench.vectordbbench.run [--vdb-python /tmp/vdb-venv/bin/python] [--label 0.05]

VectorDBBench is heavy, so it lives in its own venv (``python3 -m venv /tmp/vdb-venv &&
/tmp/vdb-venv/bin/pip install vectordb-bench``), never in annvq's. This script exports the data
set to VectorDBBench's custom-dataset Parquet layout (`export`, once), registers annvq's client
in that install (`register`), starts ``annvq serve`` on a fresh data dir and runs `drive` there:
the custom-dataset case, and a label-filter case per ``--label``. Results are printed, and
written as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from bench.datasets import load
from service.process import serve_in_subprocess

from .export import export

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vdb-python", type=Path, default=Path("/tmp/vdb-venv/bin/python"),
                   help="The Python of a VectorDBBench install.")
    p.add_argument("--dataset", default="fashion-mnist-784-euclidean")
    p.add_argument("--work-dir", type=Path, default=Path("data/vectordbbench"))
    p.add_argument("--queries", type=int, default=1000, help="Test queries exported (the serial run's count).")
    p.add_argument("--label", type=float, nargs="*", default=[0.05], help="Label-filter cases (fractions).")
    p.add_argument("--out", type=Path)
    args, rest = p.parse_known_args(argv)  # the rest goes to drive.py (--spec, --nprobe, -k, --concurrency...)
    if not args.vdb_python.exists():
        p.error(f"{args.vdb_python} does not exist: install vectordb-bench in its own venv (see --help).")
    labelled = "-labels-" + "-".join(map(str, args.label)) if args.label else ""
    data = args.work_dir / f"{args.dataset}-q{args.queries}{labelled}"
    if not (data / "dataset.json").exists():
        ds = load(args.dataset)
        export(ds.train, ds.test[:args.queries], ds.neighbors[:args.queries], ds.metric, data, labels=args.label)
    subprocess.run([args.vdb_python, HERE / "register.py"], check=True, cwd=data)  # importing it writes logs/
    served = args.work_dir / "served"
    shutil.rmtree(served, ignore_errors=True)
    served.mkdir(parents=True)
    with serve_in_subprocess(served, "--log-level", "warning", log_path=args.work_dir / "serve.log") as url:
        r = subprocess.run([args.vdb_python, HERE / "drive.py", "--url", url, "--dataset-dir", data.resolve(),
                            "--results-dir", (args.work_dir / "results").resolve(),
                            "--label", *map(str, args.label), *rest], stdout=subprocess.PIPE, text=True, check=True,
                           cwd=args.work_dir)  # VectorDBBench writes logs/ into its working directory
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
