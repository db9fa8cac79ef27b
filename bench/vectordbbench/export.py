"""Write an ann-benchmarks dataset in VectorDBBench's custom-dataset Parquet layout.

    python -m bench.vectordbbench.export fashion-mnist-784-euclidean data/vdb/fmnist --labels 0.05 --queries 1000

The directory gets ``train.parquet`` (``id`` int64, ``emb`` list<float32>), ``test.parquet``
(``id``, ``emb``) and ``neighbors.parquet`` (``id`` of the query, ``neighbors_id`` list<int64>, the
exact top ``k``). With ``--labels p1 p2 ...`` also ``scalar_labels.parquet`` (``id``, ``labels``:
``label_{100p}p`` on a seeded random fraction p of the rows, ``label_rest`` on the others) and
per label ``neighbors_labels_label_{100p}p.parquet``, the exact top k among that label's rows:
the files of VectorDBBench's label-filter cases (`vectordb_bench.backend.filter.LabelFilter`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.datasets import GroundTruth, load

#: VectorDBBench's default k is 100; its ground truth holds at least that many neighbours
K = 100
REST = "label_rest"


def label_name(percentage: float) -> str:
    """VectorDBBench's label value for a fraction (`LabelFilter.label_value`): 0.05 -> label_5p."""
    p = percentage * 100
    return f"label_{int(p)}p" if p >= 1 else f"label_{p:.1f}p"


def _vectors_table(X: np.ndarray) -> pa.Table:
    X = np.ascontiguousarray(X, dtype=np.float32)
    emb = pa.ListArray.from_arrays(pa.array(np.arange(0, X.size + 1, X.shape[1], dtype=np.int32)),
                                   pa.array(X.reshape(-1)))
    return pa.table({"id": pa.array(np.arange(len(X), dtype=np.int64)), "emb": emb})


def _neighbors_table(neighbors: np.ndarray) -> pa.Table:
    neighbors = np.ascontiguousarray(neighbors, dtype=np.int64)
    lists = pa.ListArray.from_arrays(pa.array(np.arange(0, neighbors.size + 1, neighbors.shape[1], dtype=np.int32)),
                                     pa.array(neighbors.reshape(-1)))
    return pa.table({"id": pa.array(np.arange(len(neighbors), dtype=np.int64)), "neighbors_id": lists})


def assign_labels(n: int, percentages: list[float], seed: int = 0) -> np.ndarray:
    """One label per row: exactly round(p * n) rows carry `label_name(p)` for each p (disjoint,
    seeded), the rest `REST`."""
    if any(not 0 < p < 1 for p in percentages) or sum(percentages) > 1:
        raise ValueError(f"label fractions must be in (0, 1) and sum to at most 1; got {percentages}.")
    names = [label_name(p) for p in percentages]
    if len(set(names)) != len(names):
        raise ValueError(f"label fractions {percentages} give the same label twice: {names}.")
    labels = np.full(n, REST, dtype=object)
    order = np.random.default_rng(seed).permutation(n)
    start = 0
    for p, name in zip(percentages, names):
        count = int(round(p * n))
        labels[order[start:start + count]] = name
        start += count
    return labels


def exact_neighbors(train: np.ndarray, test: np.ndarray, metric: str, k: int) -> np.ndarray:
    """The exact top k train rows (row numbers) of every test row, as the suite computes them."""
    truth = GroundTruth(test, metric, k)
    truth.add(train, 0)
    return truth.neighbors


def export(train: np.ndarray, test: np.ndarray, neighbors: np.ndarray, metric: str, out_dir: Path, *,
           labels: list[float] = (), k: int = K, seed: int = 0) -> dict:
    """Write the layout above into `out_dir`; returns what VectorDBBench's custom case needs
    (size, dim, metric, file names) and is also written as ``dataset.json``."""
    if neighbors.shape[1] < k:
        raise ValueError(f"the ground truth holds {neighbors.shape[1]} neighbours per query; k is {k}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(_vectors_table(train), out_dir / "train.parquet")
    pq.write_table(_vectors_table(test), out_dir / "test.parquet")
    pq.write_table(_neighbors_table(neighbors[:, :k]), out_dir / "neighbors.parquet")
    info = {"size": len(train), "dim": train.shape[1], "metric_type": {"euclidean": "L2", "angular": "COSINE"}[metric],
            "k": k, "labels": {}}
    if labels:
        names = assign_labels(len(train), list(labels), seed)
        pq.write_table(pa.table({"id": pa.array(np.arange(len(train), dtype=np.int64)),
                                 "labels": pa.array(names.tolist(), pa.string())}), out_dir / "scalar_labels.parquet")
        for p in labels:
            rows = np.flatnonzero(names == label_name(p))
            if len(rows) < k:
                raise ValueError(f"label {label_name(p)} has {len(rows)} rows, fewer than k = {k}.")
            sub = exact_neighbors(train[rows], test, metric, k)
            name = f"neighbors_labels_{label_name(p)}.parquet"
            pq.write_table(_neighbors_table(rows[sub]), out_dir / name)
            info["labels"][label_name(p)] = {"fraction": p, "rows": int(len(rows)), "neighbors": name}
    (out_dir / "dataset.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="An ann-benchmarks dataset name or .hdf5 path (bench.datasets).")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--labels", type=float, nargs="*", default=[], help="Label fractions, e.g. 0.05 0.2.")
    p.add_argument("-k", type=int, default=K)
    p.add_argument("--queries", type=int, default=None, help="Only the first N test rows (default: all).")
    args = p.parse_args(argv)
    ds = load(args.dataset)
    n = args.queries or len(ds.test)
    info = export(ds.train, ds.test[:n], ds.neighbors[:n], ds.metric, args.out_dir, labels=args.labels, k=args.k)
    print(json.dumps(info))
    return info


if __name__ == "__main__":
    main()
