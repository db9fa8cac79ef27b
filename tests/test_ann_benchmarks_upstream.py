"""bench/ann_benchmarks/annvq: the algorithm folder for the upstream ann-benchmarks runner.

Always: module.py against a minimal stand-in for upstream's ``ann_benchmarks.algorithms.base``
(fit, query, batch query checked against exact kNN) and config.yml against upstream's format.
With an upstream checkout (``ANN_BENCHMARKS_DIR``, default /tmp/ann-benchmarks) and a Python that
imports its requirements and annvq (``ANN_BENCHMARKS_PYTHON``, default /tmp/ab-venv/bin/python,
else this interpreter): upstream's own ``run.py --local`` on random-xs-20-euclidean.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ALGO_DIR = REPO / "bench" / "ann_benchmarks" / "annvq"
RANDOM_XS = REPO / "datasets" / "random-xs-20-euclidean.hdf5"

# upstream's BaseANN, reduced to what module.py relies on (the real one also reports RSS)
FAKE_BASE = textwrap.dedent('''
    from multiprocessing.pool import ThreadPool

    class BaseANN(object):
        def done(self):
            pass

        def get_memory_usage(self):
            return None

        def fit(self, X):
            pass

        def query(self, q, n):
            return []

        def batch_query(self, X, n):
            self.res = ThreadPool().map(lambda q: self.query(q, n), X)

        def get_batch_results(self):
            return self.res

        def get_additional(self):
            return {}

        def __str__(self):
            return self.name
''')


@pytest.fixture
def upstream_module(tmp_path, monkeypatch):
    """``ann_benchmarks.algorithms.annvq.module`` imported from a fake upstream tree in tmp_path."""
    pkg = tmp_path / "ann_benchmarks" / "algorithms"
    (pkg / "base").mkdir(parents=True)
    for d in (tmp_path / "ann_benchmarks", pkg, pkg / "base"):
        (d / "__init__.py").write_text("")
    (pkg / "base" / "module.py").write_text(FAKE_BASE)
    shutil.copytree(ALGO_DIR, pkg / "annvq", ignore=shutil.ignore_patterns("__pycache__"))
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "ann_benchmarks"}
    for k in saved:
        del sys.modules[k]
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module("ann_benchmarks.algorithms.annvq.module")
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] == "ann_benchmarks"]:
            del sys.modules[k]
        sys.modules.update(saved)


def exact_knn(X, Q, k):
    d = ((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1)[:, :k]


def recall(found, truth):
    return float(np.mean([len(set(map(int, f)) & set(map(int, t))) / len(t)
                          for f, t in zip(found, truth)]))


@pytest.mark.parametrize("spec, qargs, floor", [
    ("IVF16,SAQ4", (16,), 0.85),
    ("IVF16,PQ8x4fs", (16,), 0.5),
    ("IVF16,PQ8x4fs,Rerank", (16, 20), 0.97),
    ("IVF16,Flat", (16,), 0.999),
])
def test_module_against_exact_knn(upstream_module, spec, qargs, floor):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 16)).astype(np.float64)  # upstream hands float64 rows too
    Q = rng.standard_normal((50, 16))
    truth = exact_knn(X, Q, 10)

    algo = upstream_module.AnnvqIVF("euclidean", spec)
    assert algo.get_memory_usage() is None  # inherited from BaseANN
    algo.fit(X)
    algo.set_query_arguments(*qargs)
    single = [algo.query(q, 10) for q in Q]
    for ids in single:
        assert len(ids) == 10 and len(set(ids.tolist())) == 10
    algo.batch_query(Q, 10)
    batch = algo.get_batch_results()
    assert len(batch) == len(Q)
    assert recall(single, truth) >= floor
    assert recall(batch, truth) >= floor
    rerank = f", rerank={qargs[1]}" if len(qargs) > 1 else ""
    assert str(algo) == f"annvq({spec}, nprobe={qargs[0]}{rerank})"
    assert algo.get_additional()["bytes_per_vector"] > 0
    algo.done()


def test_module_clamps_nprobe_and_rejects_unknown_metric(upstream_module):
    with pytest.raises(ValueError):
        upstream_module.AnnvqIVF("hamming", "IVF4,SAQ4")
    algo = upstream_module.AnnvqIVF("angular", "IVF4,SAQ4")
    X = np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)
    algo.fit(X)
    algo.set_query_arguments(100)
    assert "nprobe=4" in str(algo)
    assert 0 < len(algo.query(X[0], 5)) <= 5


def test_config_names_existing_module_and_constructor(upstream_module):
    cfg = yaml.safe_load((ALGO_DIR / "config.yml").read_text())
    entries = cfg["float"]["any"]
    assert {e["name"] for e in entries} == {"annvq-saq", "annvq-pq"}
    for e in entries:
        assert e["module"] == "ann_benchmarks.algorithms.annvq"
        assert e["docker_tag"] == "ann-benchmarks-annvq"
        assert e["base_args"] == ["@metric"]
        assert hasattr(upstream_module, e["constructor"])
        for group in e["run_groups"].values():
            (specs,) = group["args"]
            for spec in specs:  # a spec must stay one string (quoted in YAML: it has commas)
                assert isinstance(spec, str) and spec.startswith("IVF") and "," in spec
                import annvq
                annvq.parse_spec(spec)
            (nprobes,) = group["query_args"]
            assert all(isinstance(p, int) and p >= 1 for p in nprobes)
    dockerfile = (ALGO_DIR / "Dockerfile").read_text()
    assert dockerfile.splitlines()[[ln.startswith("FROM") for ln in dockerfile.splitlines()].index(True)] \
        == "FROM ann-benchmarks"


# --------------------------------------------------------------------------- upstream runner

def _upstream():
    """(checkout, python) or a reason to skip."""
    ab = Path(os.environ.get("ANN_BENCHMARKS_DIR", "/tmp/ann-benchmarks"))
    if not (ab / "run.py").is_file() or not (ab / "ann_benchmarks" / "runner.py").is_file():
        return None, f"no upstream ann-benchmarks checkout at {ab} (set ANN_BENCHMARKS_DIR)"
    py = os.environ.get("ANN_BENCHMARKS_PYTHON")
    if not py:
        py = "/tmp/ab-venv/bin/python" if Path("/tmp/ab-venv/bin/python").exists() else sys.executable
    probe = subprocess.run([py, "-c", "import docker, colors, h5py, psutil, yaml, sklearn, annvq"],
                           capture_output=True, text=True)
    if probe.returncode:
        err = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return None, (f"{py} cannot import upstream's requirements and annvq ({err}); "
                      "set ANN_BENCHMARKS_PYTHON or run bench/ann_benchmarks/run_upstream.sh once")
    if not RANDOM_XS.is_file():
        return None, f"{RANDOM_XS} missing"
    return (ab, py), None


TEST_CONFIG = """
float:
  any:
  - base_args: ['@metric']
    constructor: AnnvqIVF
    disabled: false
    docker_tag: ann-benchmarks-annvq
    module: ann_benchmarks.algorithms.annvq
    name: annvq-saq
    run_groups:
      tiny:
        args: [['IVF32,SAQ4']]
        query_args: [[2, 32]]
"""


def test_upstream_runner_on_random_xs(tmp_path):
    found, reason = _upstream()
    if found is None:
        pytest.skip(reason)
    ab, py = found
    # a private copy of upstream's code (1 MB), so the checkout is left as it is
    work = tmp_path / "ab"
    shutil.copytree(ab / "ann_benchmarks", work / "ann_benchmarks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("run.py", "logging.conf"):
        shutil.copy(ab / f, work / f)
    target = work / "ann_benchmarks" / "algorithms" / "annvq"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ALGO_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    (work / "data").mkdir()
    (work / "data" / RANDOM_XS.name).symlink_to(RANDOM_XS)
    (work / "defs" / "annvq").mkdir(parents=True)
    (work / "defs" / "annvq" / "config.yml").write_text(TEST_CONFIG)

    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", PYTHONPATH="")
    cmd = [py, "run.py", "--local", "--dataset", "random-xs-20-euclidean", "--algorithm",
           "annvq-saq", "--runs", "1", "--definitions", "defs"]
    out = ""
    for _ in range(5):  # upstream's worker can miss its queue (see run_upstream.sh); retry
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        if "Trying to instantiate" in out:
            break
    results = sorted((work / "results" / "random-xs-20-euclidean" / "10" / "annvq-saq").glob("*.hdf5"))
    assert len(results) == 2, out[-4000:]

    with h5py.File(RANDOM_XS, "r") as f:
        threshold = np.asarray(f["distances"])[:, 9] + 1e-3  # upstream's recall tolerance
    recalls = {}
    for fn in results:
        with h5py.File(fn, "r") as r:
            assert r.attrs["algo"] == "annvq-saq"
            assert r.attrs["best_search_time"] > 0
            dist = np.asarray(r["distances"])
            recalls[str(r.attrs["name"])] = float(np.mean((dist <= threshold[:, None]).sum(1) / 10))
    assert set(recalls) == {"annvq(IVF32,SAQ4, nprobe=2)", "annvq(IVF32,SAQ4, nprobe=32)"}
    assert recalls["annvq(IVF32,SAQ4, nprobe=32)"] >= 0.8
    assert recalls["annvq(IVF32,SAQ4, nprobe=2)"] <= recalls["annvq(IVF32,SAQ4, nprobe=32)"] + 1e-9
