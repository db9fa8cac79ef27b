"""In-process checks of the service (FastAPI TestClient): start-up readiness, a blocked search
not blocking /healthz, the streamed-body size limit, name validation, the metrics text and the
server's thread settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from annvq import Collection
from annvq.errors import InvalidParameterError
from cli.serve_cmd import SERVER_THREAD_ENV, use_server_threads
from naive import clustered
from service.app import create_app
from service.metrics import BUCKETS, Metrics
from service.registry import check_name
from service.settings import Settings

DIM = 8


@pytest.fixture
def data_dir(tmp_path):
    """A data dir holding one small exact collection `c` (ids 0..199, payload {"i": id})."""
    X = clustered(200, DIM, seed=5)
    with Collection.create(tmp_path / "c", DIM, spec="Flat") as col:
        col.upsert(np.arange(200), X, [{"i": i} for i in range(200)])
        col.persist()
    return tmp_path


def test_readyz_is_503_until_kernels_are_warm(data_dir, monkeypatch):
    release, entered = threading.Event(), threading.Event()

    def slow_warmup(self):
        entered.set()
        assert release.wait(30)

    monkeypatch.setattr(Collection, "warmup", slow_warmup)
    with TestClient(create_app(data_dir)) as client:
        assert entered.wait(30)
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "not_ready"
        assert r.json()["error"]["details"]["collections"] == ["c"]
        assert client.get("/healthz").status_code == 200
        assert "annvq_ready 0" in client.get("/metrics").text
        release.set()
        for _ in range(300):
            if (r := client.get("/readyz")).status_code == 200:
                break
            threading.Event().wait(0.1)
        assert r.json() == {"status": "ready", "collections": ["c"], "failed": {}}


def test_a_blocked_search_does_not_block_healthz(data_dir, monkeypatch):
    release, entered = threading.Event(), threading.Event()
    search = Collection.query

    def blocked_search(self, *args, **kwargs):
        entered.set()
        assert release.wait(30)
        return search(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "query", blocked_search)
    with TestClient(create_app(data_dir, warmup=False)) as client:
        result = {}
        worker = threading.Thread(target=lambda: result.update(
            r=client.post("/v1/collections/c/query", json={"vector": [0.0] * DIM, "k": 3})))
        worker.start()
        try:
            assert entered.wait(30)
            # the search is parked inside a worker thread; the event loop still answers
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/readyz").status_code == 200
        finally:
            release.set()
            worker.join(30)
        assert result["r"].status_code == 200 and len(result["r"].json()["ids"]) == 3


def test_threads_caps_the_search_pool(data_dir, monkeypatch):
    """With --threads 1 concurrent queries are searched one after another, all answered."""
    lock, running, peak = threading.Lock(), [0], [0]
    search = Collection.query

    def counted_search(self, *args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        threading.Event().wait(0.2)  # long enough for the other requests to arrive meanwhile
        try:
            return search(self, *args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(Collection, "query", counted_search)
    with TestClient(create_app(data_dir, threads=1, warmup=False)) as client:
        codes = []
        clients = [threading.Thread(target=lambda: codes.append(
            client.post("/v1/collections/c/query", json={"vector": [0.0] * DIM, "k": 3}).status_code))
            for _ in range(3)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(30)
    assert codes == [200, 200, 200] and peak[0] == 1


def test_streamed_body_over_the_limit_is_413(data_dir):
    with TestClient(create_app(data_dir, max_request_bytes=1000, warmup=False)) as client:
        def chunks():  # no Content-Length: the limit must count the bytes as they arrive
            yield b'{"ids": [1], "vectors": [['
            for _ in range(300):
                yield b"0.0, "
            yield b"0.0]]}"

        r = client.put("/v1/collections/c/points", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "body_too_large"
        small = client.post("/v1/collections/c/query", json={"vector": [0.0] * DIM, "k": 1})
        assert small.status_code == 200
        assert client.get("/v1/collections/c").json()["count"] == 200


def test_method_not_allowed_has_the_error_shape(data_dir):
    with TestClient(create_app(data_dir, warmup=False)) as client:
        r = client.patch("/v1/collections/c")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_unopenable_collection_is_reported_not_fatal(data_dir):
    (data_dir / "broken").mkdir()
    (data_dir / "broken" / "CURRENT").write_text("MANIFEST-999.json")
    with TestClient(create_app(data_dir, warmup=False)) as client:
        ready = client.get("/readyz").json()
        assert ready["collections"] == ["c"] and "broken" in ready["failed"]
        assert client.get("/v1/collections/c").status_code == 200


@pytest.mark.parametrize("name", ["a", "A9", "my_coll-2", "x" * 64])
def test_safe_names_pass(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", ".snap", "-a", "_a", "a.b",
                                  "x" * 65, "é", "a\x00", " a"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(InvalidParameterError, match="collection name"):
        check_name(name)


def test_settings_refuse_nonsense(tmp_path):
    with pytest.raises(ValueError, match="max_request_bytes"):
        Settings(tmp_path, max_request_bytes=0)
    with pytest.raises(ValueError, match="threads"):
        Settings(tmp_path, threads=0)
    assert Settings(tmp_path, api_key="").api_key is None


def test_metrics_histogram_is_cumulative():
    m = Metrics()
    for seconds in (0.0001, 0.0004, 0.003, 0.2, 99.0):
        m.observe("POST", "query", 200, seconds)
    m.count_vectors('we"ird', "query", 5)
    lines = m.render({"c": {"count": 7, "bytes_mapped": 10}}, ready=True).splitlines()
    buckets = [line for line in lines if line.startswith("annvq_http_request_duration_seconds_bucket")]
    counts = [int(line.rsplit(" ", 1)[1]) for line in buckets]
    assert len(counts) == len(BUCKETS) + 1 and counts == sorted(counts) and counts[-1] == 5
    assert counts[0] == 2  # 0.1 ms and 0.4 ms are both <= 0.5 ms
    assert 'annvq_http_request_duration_seconds_count{handler="query"} 5' in lines
    assert 'annvq_http_requests_total{method="POST",handler="query",status="200"} 5' in lines
    assert 'annvq_vectors_total{collection="we\\"ird",op="query"} 5' in lines
    assert 'annvq_collection_count{collection="c"} 7' in lines
    assert "annvq_ready 1" in lines


def test_serve_sets_thread_settings_before_numpy_loads():
    """They only work if set before numpy, numba and faiss load; `serve` runs the server (here
    replaced by a probe) only after setting them."""
    probe = ("import os, sys\n"
             "import cli.serve_cmd as cmd\n"
             "cmd._serve = lambda **options: print(sorted({'numpy', 'numba', 'faiss'} & sys.modules.keys()),\n"
             "    [os.environ.get(k) for k in cmd.SERVER_THREAD_ENV])\n"
             "cmd.serve(['some-dir'], standalone_mode=False)\n")
    env = {k: v for k, v in os.environ.items() if k not in SERVER_THREAD_ENV}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=True)
    assert out.stdout.strip() == f"[] {list(SERVER_THREAD_ENV.values())}"


def test_thread_settings_keep_the_environment_and_warn_when_too_late(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.warns(UserWarning, match="too late"):  # numpy is loaded in this process
        use_server_threads()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
