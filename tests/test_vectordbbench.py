"""bench/vectordbbench: the Parquet exporter (always) and the VectorDBBench client package (where
vectordb_bench imports: in this interpreter, and end to end against a real ``annvq serve`` from
the Python of a separate VectorDBBench install, ``VECTORDBBENCH_PYTHON``, default
/tmp/vdb-venv/bin/python; skipped with the reason otherwise)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.vectordbbench.export import REST, assign_labels, export, label_name

REPO = Path(__file__).resolve().parents[1]
VDB_PYTHON = Path(os.environ.get("VECTORDBBENCH_PYTHON", "/tmp/vdb-venv/bin/python"))


def brute_force(train: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    d = ((test[:, None, :].astype(np.float64) - train[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    train = rng.standard_normal((2000, 16)).astype(np.float32)
    test = rng.standard_normal((20, 16)).astype(np.float32)
    return train, test, brute_force(train, test, 10)


def test_export_writes_vectordbbench_custom_layout(tmp_path, small):
    """train/test/neighbors with VectorDBBench's column names and types, the label file and one
    exact filtered ground truth per label, and dataset.json with what the custom case needs."""
    train, test, truth = small
    info = export(train, test, truth, "euclidean", tmp_path, labels=[0.05, 0.2], k=10)
    assert info["size"] == 2000 and info["dim"] == 16 and info["metric_type"] == "L2"
    assert json.loads((tmp_path / "dataset.json").read_text()) == info
    t = pq.read_table(tmp_path / "train.parquet")
    emb_type = t.schema.field("emb").type
    assert t.column_names == ["id", "emb"] and pa.types.is_list(emb_type) and emb_type.value_type == pa.float32()
    assert t["id"].to_pylist() == list(range(2000))
    np.testing.assert_array_equal(np.stack(t["emb"].to_numpy(zero_copy_only=False)), train)
    q = pq.read_table(tmp_path / "test.parquet")
    np.testing.assert_array_equal(np.stack(q["emb"].to_numpy(zero_copy_only=False)), test)
    gt = pq.read_table(tmp_path / "neighbors.parquet")
    assert gt.column_names == ["id", "neighbors_id"]
    np.testing.assert_array_equal(np.stack(gt["neighbors_id"].to_numpy(zero_copy_only=False)), truth)
    labels = np.array(pq.read_table(tmp_path / "scalar_labels.parquet")["labels"].to_pylist())
    assert (labels == "label_5p").sum() == 100 and (labels == "label_20p").sum() == 400
    assert (labels == REST).sum() == 1500
    for name in ("label_5p", "label_20p"):
        rows = np.flatnonzero(labels == name)
        got = np.stack(pq.read_table(tmp_path / f"neighbors_labels_{name}.parquet")["neighbors_id"]
                       .to_numpy(zero_copy_only=False))
        np.testing.assert_array_equal(got, rows[brute_force(train[rows], test, 10)])
        assert info["labels"][name]["rows"] == len(rows)


def test_labels_are_vectordbbench_names_and_bad_fractions_are_refused():
    assert [label_name(p) for p in (0.01, 0.05, 0.5, 0.001, 0.002)] == [
        "label_1p", "label_5p", "label_50p", "label_0.1p", "label_0.2p"]
    with pytest.raises(ValueError, match="sum to at most 1"):
        assign_labels(100, [0.6, 0.5])
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        assign_labels(100, [0.0])
    with pytest.raises(ValueError, match="same label twice"):
        assign_labels(100, [0.05, 0.051])


def test_export_refuses_a_short_ground_truth(tmp_path, small):
    train, test, truth = small
    with pytest.raises(ValueError, match="holds 10 neighbours per query; k is 100"):
        export(train, test, truth, "euclidean", tmp_path)


def test_client_module_validates_where_vectordb_bench_imports():
    pytest.importorskip("vectordb_bench", reason="vectordb-bench is not installed in this interpreter "
                                                 "(it is heavy: install it in a separate venv, see bench/vectordbbench)")
    from vectordb_bench.backend.clients.api import MetricType, VectorDB
    from vectordb_bench.backend.filter import FilterOp

    from bench.vectordbbench.annvq.annvq import Annvq
    from bench.vectordbbench.annvq.config import AnnvqConfig, AnnvqIndexConfig

    assert issubclass(Annvq, VectorDB) and FilterOp.StrEqual in Annvq.supported_filter_types
    case = AnnvqIndexConfig(metric_type=MetricType.COSINE, spec="IVF64,SAQ4", nprobe=8)
    assert case.index_param() == {"spec": "IVF64,SAQ4", "metric": "cosine"} and case.search_param() == {"nprobe": 8}
    assert AnnvqConfig(url="http://h:1").to_dict() == {"url": "http://h:1", "api_key": None}
    with pytest.raises(ValueError, match="annvq supports the metrics"):
        AnnvqIndexConfig(metric_type=MetricType.HAMMING).index_param()


# Runs in VectorDBBench's Python: the client against a real server, as VectorDBBench drives it.
E2E = textwrap.dedent('''
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from vectordb_bench.backend.clients.api import MetricType
    from vectordb_bench.backend.filter import LabelFilter, non_filter
    from bench.vectordbbench.annvq.annvq import Annvq
    from bench.vectordbbench.annvq.config import AnnvqConfig, AnnvqIndexConfig

    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 8)).astype(np.float32)
    labels = ["label_5p" if i % 20 == 0 else "label_rest" for i in range(1000)]
    case = AnnvqIndexConfig(metric_type=MetricType.L2, spec="IVF4,Flat", nprobe=4)
    db = Annvq(8, AnnvqConfig(url=sys.argv[2]).to_dict(), case, "vdb_e2e", drop_old=True, with_scalar_labels=True)
    out = {}
    with db.init():
        out["inserted"] = [db.insert_embeddings(X[i:i + 500].tolist(), list(range(i, i + 500)),
                                                labels_data=labels[i:i + 500])[0] for i in (0, 500)]
        db.optimize()
        db.prepare_filter(non_filter)
        out["plain"] = db.search_embedding(X[7].tolist(), k=3)
        db.prepare_filter(LabelFilter(label_percentage=0.05))
        out["filtered"] = db.search_embedding(X[7].tolist(), k=3)
        out["bad"] = db.insert_embeddings(X[:2, :4].tolist(), [0, 1])[1] is not None
    print(json.dumps(out))
''')


@pytest.mark.slow
def test_client_end_to_end_in_vectordbbench_python(tmp_path):
    """Insert (Arrow, with labels), optimize (persist), a plain and a label-filtered search, and
    a refused insert reported as VectorDBBench expects (count 0 and the error)."""
    if not VDB_PYTHON.exists() or subprocess.run([VDB_PYTHON, "-c", "import vectordb_bench"], capture_output=True,
                                                 cwd=tmp_path).returncode:  # importing it makes logs/ there
        pytest.skip(f"no VectorDBBench install at {VDB_PYTHON} (set VECTORDBBENCH_PYTHON)")
    from service.process import serve_in_subprocess

    with serve_in_subprocess(tmp_path / "data", "--no-warmup", log_path=tmp_path / "serve.log") as url:
        r = subprocess.run([VDB_PYTHON, "-c", E2E, str(REPO), url], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)  # VectorDBBench writes logs/ into its working directory
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["inserted"] == [500, 500] and out["bad"]
    assert out["plain"][0] == 7 and len(out["plain"]) == 3
    assert out["filtered"][0] == 0 or out["filtered"][0] % 20 == 0  # only label_5p rows: ids 0, 20, 40...
    assert all(i % 20 == 0 for i in out["filtered"]) and len(out["filtered"]) == 3
