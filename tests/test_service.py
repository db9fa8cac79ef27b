"""The HTTP service end to end: real `annvq serve` processes (uvicorn) on 127.0.0.1 and a free
port, driven with httpx. Small data (dim 16, a few thousand points) keeps the file quick."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest

from naive import clustered, exact_knn

from annvq import Collection
from service.process import serve_in_subprocess, wait_ready

pytestmark = pytest.mark.slow

DIM = 16
SPECS = {"flat": "IVF16,Flat", "saq": "IVF16,SAQ4"}  # one exact codec, one compressed
NPROBE_ALL = 16  # nprobe = nlist scans every list: IVF16,Flat is then exact
MAX_MB = 1


@contextlib.contextmanager
def running_server(data_dir: Path, *args: str, log_name: str = "serve.log"):
    """A real `annvq serve` process, up and answering /healthz; always stopped afterwards."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with serve_in_subprocess(data_dir, "--log-level", "warning", *args,
                             log_path=data_dir.parent / log_name) as url:
        yield url


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response has `status` and the one error shape; returns the error object."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def make_collection(client, name, X, *, spec=SPECS["flat"], payloads=True, persist=True, **options):
    """Create `name`, upsert X with ids 0..n-1 (payload {"i": id}), train and persist."""
    r = client.put(f"/v1/collections/{name}", json={"dim": X.shape[1], "spec": spec, **options})
    assert r.status_code == 201, r.text
    ids = list(range(len(X)))
    body = {"ids": ids, "vectors": X.tolist()}
    if payloads:
        body["payloads"] = [{"i": i} for i in ids]
    r = client.put(f"/v1/collections/{name}/points", json=body)
    assert r.status_code == 200 and r.json() == {"upserted": len(X), "count": len(X)}, r.text
    r = client.post(f"/v1/collections/{name}/train")
    assert r.status_code == 200 and r.json()["trained"] is True, r.text
    if persist:
        assert client.post(f"/v1/collections/{name}/persist").status_code == 200


@pytest.fixture(scope="module")
def data():
    return clustered(2000, DIM, seed=11), clustered(20, DIM, seed=12)


@pytest.fixture(scope="module")
def server(tmp_path_factory, data):
    """One writable server with collections `flat` and `saq` (2000 points each) ready."""
    data_dir = tmp_path_factory.mktemp("srv") / "data"
    with running_server(data_dir, "--max-request-mb", str(MAX_MB), "--threads", "8") as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_ready(client)
            for name, spec in SPECS.items():
                make_collection(client, name, data[0], spec=spec)
            yield client, data_dir


# --- service endpoints --------------------------------------------------------------------

def test_root_health_ready_docs_and_openapi(server):
    client, _ = server
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and {"flat", "saq"} <= set(ready["collections"])
    root = client.get("/").json()
    assert root["name"] == "annvq" and {"flat", "saq"} <= set(root["collections"])
    spec = client.get("/openapi.json").json()
    assert {"/v1/collections/{name}", "/v1/collections/{name}/points", "/v1/collections/{name}/query",
            "/v1/collections/{name}/query/batch", "/v1/collections/{name}/snapshots"} <= set(spec["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_collection_lifecycle(server):
    client, data_dir = server
    r = client.put("/v1/collections/tmp1", json={"dim": 8, "metric": "cosine", "spec": "IVF4,Flat"})
    assert r.status_code == 201
    assert r.json()["dim"] == 8 and r.json()["metric"] == "cosine" and r.json()["count"] == 0
    assert (data_dir / "tmp1").is_dir()
    got = client.get("/v1/collections/tmp1").json()
    assert got["name"] == "tmp1" and got["spec"] == "IVF4,Flat" and got["trained"] is False
    listed = client.get("/v1/collections").json()
    assert listed["count"] == len(listed["data"]) and "tmp1" in [c["name"] for c in listed["data"]]
    assert_error(client.put("/v1/collections/tmp1", json={"dim": 8}), 409, "collection_exists")
    assert client.delete("/v1/collections/tmp1").status_code == 200
    assert not (data_dir / "tmp1").exists()
    assert_error(client.get("/v1/collections/tmp1"), 404, "collection_not_found")
    assert_error(client.delete("/v1/collections/tmp1"), 404, "collection_not_found")


@pytest.mark.parametrize("name", SPECS)
def test_query_against_exact_neighbours(server, data, name):
    client, _ = server
    X, Q = data
    truth = exact_knn(X, Q, 10)
    r = client.post(f"/v1/collections/{name}/query/batch",
                    json={"vectors": Q.tolist(), "k": 10, "params": {"nprobe": NPROBE_ALL}})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == len(Q) and r.json()["took_ms"] >= 0
    found = np.array([res["ids"] for res in results])
    for res in results:
        assert [p["i"] for p in res["payloads"]] == res["ids"]
        assert res["distances"] == sorted(res["distances"])
    if name == "flat":  # all lists scanned over raw vectors: exact, distances are Euclidean
        assert (found == truth).all()
        dist = np.array([res["distances"] for res in results])
        np.testing.assert_allclose(dist, np.linalg.norm(Q[:, None] - X[truth], axis=2), rtol=1e-4, atol=1e-4)
    else:  # 4-bit codes: most true neighbours found
        hit = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        assert hit >= 0.7, hit
    # single-vector endpoint == a batch of one
    one = client.post(f"/v1/collections/{name}/query",
                      json={"vector": Q[0].tolist(), "k": 10, "params": {"nprobe": NPROBE_ALL}}).json()
    assert one["ids"] == results[0]["ids"] and one["took_ms"] >= 0
    assert one["distances"] == pytest.approx(results[0]["distances"], rel=1e-6)


def test_query_options_and_exact(server, data):
    client, _ = server
    X, Q = data
    r = client.post("/v1/collections/flat/query", json={
        "vector": Q[1].tolist(), "k": 5, "params": {"exact": True},
        "with_payload": False, "with_vector": True}).json()
    assert r["ids"] == exact_knn(X, Q[1:2], 5)[0].tolist()
    assert r["payloads"] is None
    np.testing.assert_allclose(np.array(r["vectors"]), X[r["ids"]], rtol=1e-6)
    # rerank from stored vectors on the compressed collection gives exact distances
    rr = client.post("/v1/collections/saq/query", json={
        "vector": Q[1].tolist(), "k": 5, "params": {"nprobe": NPROBE_ALL, "rerank": 4}}).json()
    np.testing.assert_allclose(rr["distances"], np.linalg.norm(X[rr["ids"]] - Q[1], axis=1), rtol=1e-4)


def test_points_get_delete(server, data):
    client, _ = server
    X, Q = data
    make_collection(client, "pts", X[:300], persist=False)
    r = client.post("/v1/collections/pts/points/get", json={"ids": [7, 99999, 3]}).json()
    assert [p["id"] for p in r["data"]] == [7, 3] and r["count"] == 2
    assert r["data"][0]["payload"] == {"i": 7}
    np.testing.assert_array_equal(np.array(r["data"][0]["vector"], np.float32), X[7])
    bare = client.post("/v1/collections/pts/points/get",
                       json={"ids": [7], "with_vector": False, "with_payload": False}).json()
    assert bare["data"] == [{"id": 7, "vector": None, "payload": None}]
    one = client.get("/v1/collections/pts/points/5").json()
    assert one["id"] == 5 and one["payload"] == {"i": 5}
    assert_error(client.get("/v1/collections/pts/points/123456"), 404, "point_not_found")
    # overwrite changes vector and payload
    r = client.put("/v1/collections/pts/points", json={"ids": [5], "vectors": [X[400].tolist()],
                                                       "payloads": [{"new": True}]})
    assert r.json() == {"upserted": 1, "count": 300}
    assert client.get("/v1/collections/pts/points/5").json()["payload"] == {"new": True}
    # delete: counts the ids that existed; deleted ids never come back from a query
    nearest = client.post("/v1/collections/pts/query", json={"vector": X[10].tolist(), "k": 3}).json()["ids"]
    assert nearest[0] == 10
    r = client.post("/v1/collections/pts/points/delete", json={"ids": [10, 11, 777777]})
    assert r.json() == {"deleted": 2, "count": 298}
    assert_error(client.get("/v1/collections/pts/points/10"), 404, "point_not_found")
    after = client.post("/v1/collections/pts/query",
                        json={"vector": X[10].tolist(), "k": 20, "params": {"exact": True}}).json()["ids"]
    assert 10 not in after and 11 not in after and len(after) == 20
    # k larger than the collection: every live point, no padding
    small = client.post("/v1/collections/pts/query", json={"vector": X[0].tolist(), "k": 1000,
                                                           "params": {"exact": True}}).json()
    assert len(small["ids"]) == 298 == len(set(small["ids"]))


def test_persist_compact_metrics(server):
    client, _ = server
    client.post("/v1/collections/flat/points/delete", json={"ids": [1999]})
    persisted = client.post("/v1/collections/flat/persist").json()
    assert persisted["count"] == 1999 and persisted["stats"]["buffered"] == 0
    compacted = client.post("/v1/collections/flat/compact").json()
    assert compacted["count"] == 1999 and compacted["stats"]["deleted"] == 0
    text = client.get("/metrics").text
    assert 'annvq_collection_count{collection="flat"} 1999' in text
    assert 'annvq_http_requests_total{method="POST",handler="compact",status="200"} 1' in text
    assert 'annvq_http_request_duration_seconds_bucket{handler="query_batch",le="+Inf"}' in text
    assert 'annvq_vectors_total{collection="flat",op="upsert"} 2000' in text
    assert "annvq_ready 1" in text


# --- errors -------------------------------------------------------------------------------

def raw_post(client, path, text, method="POST"):
    """Send `text` as a JSON body verbatim (json.dumps cannot write NaN tokens on purpose)."""
    return client.request(method, path, content=text.encode(), headers={"content-type": "application/json"})


def test_400_bad_values_and_failed_write_changes_nothing(server, data):
    client, _ = server
    X, _ = data
    v = X[0].tolist()
    q = "/v1/collections/flat/query"
    assert_error(client.post(q, json={"vector": v[:-1]}), 400, "dimension_mismatch")
    assert_error(client.post(q + "/batch", json={"vectors": [v, v + [1.0]]}), 400, "dimension_mismatch")
    nan = raw_post(client, q, '{"vector": [NaN' + ", 0" * (DIM - 1) + "]}")
    assert_error(nan, 400, "non_finite_value")
    inf = raw_post(client, q, '{"vector": [Infinity' + ", 0" * (DIM - 1) + "]}")
    assert_error(inf, 400, "non_finite_value")
    assert_error(client.post(q, json={"vector": v, "k": 0}), 400, "out_of_range")
    assert_error(client.post(q, json={"vector": v, "k": 10**6}), 400, "out_of_range")
    assert_error(client.post(q, json={"vector": v, "params": {"nprobe": 0}}), 400, "out_of_range")
    err = assert_error(client.post(q, json={"vector": v, "params": {"nprobe": 17}}), 400, "invalid_parameter")
    assert "nprobe" in err["message"] and "17" in err["message"]
    assert_error(client.post(q, json={"vector": [1e39] * DIM}), 400, "invalid_vectors")
    assert_error(client.put("/v1/collections/badspec", json={"dim": 4, "spec": "IVF4,Nope"}), 400, "invalid_spec")
    assert_error(client.get("/v1/collections/badspec"), 404)
    # a write with one bad row is refused as a whole
    before = client.get("/v1/collections/flat").json()["count"]
    bad = raw_post(client, "/v1/collections/flat/points",
                   '{"ids": [5000, 5001], "vectors": [%s, [NaN%s]]}' % (v, ", 0" * (DIM - 1)), "PUT")
    assert_error(bad, 400, "non_finite_value")
    r = client.put("/v1/collections/flat/points", json={"ids": [5000, 5001], "vectors": [v, v[:-1]]})
    assert_error(r, 400, "dimension_mismatch")
    r = client.put("/v1/collections/flat/points", json={"ids": [5000, 5000], "vectors": [v, v]})
    assert_error(r, 400, "invalid_parameter")
    r = client.put("/v1/collections/flat/points", json={"ids": [5000, 2**63], "vectors": [v, v]})
    assert_error(r, 400)
    r = client.put("/v1/collections/flat/points", json={"ids": [5000], "vectors": [v], "payloads": [{}, {}]})
    assert_error(r, 400)
    r = raw_post(client, "/v1/collections/flat/points",
                 '{"ids": [5000], "vectors": [%s], "payloads": [{"x": NaN}]}' % v, "PUT")
    assert_error(r, 400, "invalid_parameter")
    assert client.get("/v1/collections/flat").json()["count"] == before
    assert client.post("/v1/collections/flat/points/get", json={"ids": [5000, 5001]}).json()["count"] == 0


def test_422_schema(server, data):
    client, _ = server
    q = "/v1/collections/flat/query"
    assert_error(client.post(q, json={}), 422, "validation_error")
    assert_error(client.post(q, json={"vector": "abc"}), 422)
    assert_error(client.post(q, json={"vector": [0.0] * DIM, "kk": 3}), 422)
    assert_error(client.post(q, json={"vector": [0.0] * DIM, "k": "many"}), 422)
    assert_error(raw_post(client, q, "{not json"), 422)
    assert_error(raw_post(client, q + "/batch", "{not json"), 422)
    assert_error(raw_post(client, "/v1/collections/flat/points", "", "PUT"), 422)
    err = assert_error(client.post(q + "/batch", json={"vectors": [[0.0] * DIM], "k": "x"}), 422)
    assert err["details"][0]["loc"] == ["body", "k"]
    assert_error(client.put("/v1/collections/x1", json={"dim": "big"}), 422)
    assert_error(client.put("/v1/collections/x1", json={"dim": 4, "metric": "manhattan"}), 422)
    assert_error(client.put("/v1/collections/flat/points", json={"ids": ["a"], "vectors": [[0.0] * DIM]}), 422)
    assert_error(client.get("/v1/collections/flat/points/notanint"), 422)


def test_404_unknown_collection_on_every_route(server):
    client, _ = server
    base = "/v1/collections/nosuch"
    calls = [("GET", base, None), ("DELETE", base, None), ("PUT", base + "/points", {"ids": [1], "vectors": [[0.0]]}),
             ("POST", base + "/points/delete", {"ids": [1]}), ("POST", base + "/points/get", {"ids": [1]}),
             ("GET", base + "/points/1", None), ("POST", base + "/query", {"vector": [0.0]}),
             ("POST", base + "/query/batch", {"vectors": [[0.0]]}), ("POST", base + "/persist", None),
             ("POST", base + "/compact", None), ("POST", base + "/train", None),
             ("POST", base + "/snapshots", None), ("POST", base + "/points/count", {}),
             ("POST", base + "/points/scroll", {}), ("PUT", base + "/payload-indexes/f", {"kind": "integer"}),
             ("DELETE", base + "/payload-indexes/f", None)]
    for method, path, body in calls:
        assert_error(client.request(method, path, json=body), 404, "collection_not_found")
    assert client.get(base + "/snapshots").json() == {"data": [], "count": 0}
    assert_error(client.post("/v1/collections/flat/snapshots/20990101T000000-00000000/restore",
                             json={"target": "zz"}), 404, "snapshot_not_found")
    assert_error(client.get("/v1/nothing/here"), 404, "not_found")


def test_413_body_too_large(server):
    client, _ = server
    rows = np.random.default_rng(0).random((8000, DIM)).tolist()  # ~ 2.5 MB of JSON
    body = {"ids": list(range(10_000, 18_000)), "vectors": rows}
    err = assert_error(client.put("/v1/collections/flat/points", json=body), 413, "body_too_large")
    assert err["details"]["max_bytes"] == MAX_MB * 1024 * 1024
    assert client.get("/v1/collections/flat").json()["count"] in (1999, 2000)  # nothing written


def test_hostile_collection_names(server):
    client, data_dir = server
    outside = data_dir.parent
    before_out, before_in = sorted(os.listdir(outside)), sorted(os.listdir(data_dir))
    hostile = ["..", "...", "a..b", ".hidden", ".snapshots", "-dash", "a.b", "a b", "x" * 65, "é",
               "%2e%2e", "..%2F..%2Fetc", "a%2Fb", "a%5Cb", "%00", "con%00"]
    for name in hostile:
        r = client.put(f"/v1/collections/{name}", json={"dim": 4, "spec": "Flat"})
        assert r.status_code in (400, 404, 405), (name, r.status_code, r.text)
        assert_error(r, r.status_code)
        g = client.get(f"/v1/collections/{name}/snapshots")
        assert g.status_code in (400, 404, 405) or g.json()["count"] == 0, (name, g.text)
        s = client.post(f"/v1/collections/flat/snapshots/{name}/restore", json={"target": "ok1"})
        assert s.status_code in (400, 404, 405), (name, s.text)
        t = client.post("/v1/collections/flat/snapshots/x/restore", json={"target": name})
        assert t.status_code in (400, 404), (name, t.text)
    assert sorted(os.listdir(outside)) == before_out
    assert sorted(os.listdir(data_dir)) == before_in


# --- concurrency --------------------------------------------------------------------------

def test_load_generator_client_and_rounds(server, data):
    """bench.http_load against the real server: its lean client keeps one connection alive across
    answers of every kind, and a round counts requests and errors."""
    with warnings.catch_warnings():  # its thread settings are for a process of its own
        warnings.simplefilter("ignore")
        from bench.http_load import WRITER_BATCH, Connection, run_http_load, upsert_blocks, upsert_body
    client, _ = server
    upsert = json.loads(upsert_body(7, upsert_blocks(data[1])[1]))  # the writer's body, assembled
    assert upsert["ids"] == list(range(7, 7 + WRITER_BATCH)) and np.asarray(upsert["vectors"]).shape == (WRITER_BATCH, DIM)
    url = str(client.base_url)
    conn = Connection(url)
    status, body = conn.request("GET", "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    first = conn._sock
    status, body = conn.request("POST", "/v1/collections/nope/query", json.dumps({"vector": [0.0] * DIM}).encode())
    assert status == 404 and json.loads(body)["error"]["code"] == "collection_not_found"
    status, body = conn.request("POST", "/v1/collections/saq/query", json.dumps({"vector": [0.0] * DIM, "k": 3}).encode())
    assert status == 200 and len(json.loads(body)["ids"]) == 3 and conn._sock is first
    conn.close()
    ok = run_http_load(url, "saq", data[1], clients=2, duration_s=60, max_requests=40, nprobe=4, k=5)
    assert (ok["requests"], ok["errors"]) == (40, 0) and 0 < ok["p50_ms"] <= ok["p99_ms"]
    # the split of the round trip: the handler's own time (took_ms) and the rest, both within it
    assert 0 < ok["handler_p50_ms"] < ok["p50_ms"] and 0 < ok["outside_handler_p50_ms"] < ok["p50_ms"]
    missing = run_http_load(url, "nope", data[1], clients=2, duration_s=60, max_requests=10, nprobe=4, k=5)
    assert missing["errors"] == missing["requests"] == 10 and "404" in missing["first_errors"][0]
    assert missing["handler_p50_ms"] is None  # no answer to split
    before = client.get("/v1/collections/flat").json()["count"]
    mixed = run_http_load(url, "flat", data[1], clients=1, duration_s=0.5, max_requests=10**6, writer=True, k=5)
    assert mixed["errors"] == 0 and mixed["upserts"]["errors"] == 0 and mixed["upserts"]["requests"] >= 1
    assert client.get("/v1/collections/flat").json()["count"] == before  # the writer cleaned up


def test_concurrent_queries_during_upserts(server):
    """Four readers query while one writer upserts new points: no errors, and every answer is
    whole: unique ids, sorted distances that match each id's own vector, payload of that id."""
    client, _ = server
    base_url = str(client.base_url)
    pool = clustered(3000, DIM, seed=21)
    make_collection(client, "live", pool[:1000])
    queries = clustered(40, DIM, seed=22)
    problems: list[str] = []
    done = threading.Event()

    def writer():
        with httpx.Client(base_url=base_url, timeout=60) as c:
            for lo in range(1000, 3000, 100):
                ids = list(range(lo, lo + 100))
                r = c.put("/v1/collections/live/points", json={
                    "ids": ids, "vectors": pool[lo:lo + 100].tolist(), "payloads": [{"i": i} for i in ids]})
                if r.status_code != 200:
                    problems.append(f"upsert {r.status_code} {r.text}")
                if lo == 2000 and c.post("/v1/collections/live/persist").status_code != 200:
                    problems.append("persist failed")
        done.set()

    def reader(seed):
        with httpx.Client(base_url=base_url, timeout=60) as c:
            for n in range(60):
                q = queries[(seed * 7 + n) % len(queries)]
                r = c.post("/v1/collections/live/query",
                           json={"vector": q.tolist(), "k": 10, "params": {"nprobe": NPROBE_ALL}})
                if r.status_code != 200:
                    problems.append(f"query {r.status_code} {r.text}")
                    continue
                res = r.json()
                ids, dist = res["ids"], res["distances"]
                true = np.linalg.norm(pool[ids] - q, axis=1)
                if len(ids) != 10 or len(set(ids)) != 10 or dist != sorted(dist) \
                        or not np.allclose(dist, true, rtol=1e-4, atol=1e-4) \
                        or [p["i"] for p in res["payloads"]] != ids:
                    problems.append(f"torn result {res}")
                if done.is_set() and n > 30:
                    break

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert problems == []
    assert client.get("/v1/collections/live").json()["count"] == 3000
    final = client.post("/v1/collections/live/query/batch",
                        json={"vectors": queries.tolist(), "k": 10, "params": {"nprobe": NPROBE_ALL}}).json()
    assert np.array([r["ids"] for r in final["results"]]).tolist() == exact_knn(pool, queries, 10).tolist()


# --- snapshots ----------------------------------------------------------------------------

def test_snapshot_then_restore_gives_identical_results(server, data):
    client, data_dir = server
    _, Q = data
    body = {"vectors": Q.tolist(), "k": 10, "params": {"nprobe": 4}}
    snap = client.post("/v1/collections/saq/snapshots")
    assert snap.status_code == 201, snap.text
    snap = snap.json()
    assert snap["collection"] == "saq" and snap["count"] == 2000 and snap["files"]
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in snap["files"].values())
    assert (data_dir / ".snapshots" / "saq" / snap["id"]).is_dir()
    assert snap["id"] in [s["id"] for s in client.get("/v1/collections/saq/snapshots").json()["data"]]
    before = client.post("/v1/collections/saq/query/batch", json=body).json()["results"]
    # writes after the snapshot are not in it
    assert client.post("/v1/collections/saq/points/delete", json={"ids": [0, 1, 2]}).json()["deleted"] == 3
    restore = f"/v1/collections/saq/snapshots/{snap['id']}/restore"
    assert_error(client.post(restore, json={"target": "flat"}), 409, "collection_exists")
    assert_error(client.post(restore), 409, "collection_exists")  # default target: the source
    r = client.post(restore, json={"target": "saq_copy"})
    assert r.status_code == 201, r.text
    assert r.json()["count"] == 2000 and r.json()["spec"] == SPECS["saq"]
    assert client.get("/v1/collections/saq_copy/points/0").json()["payload"] == {"i": 0}
    after = client.post("/v1/collections/saq_copy/query/batch", json=body).json()["results"]
    assert [x["ids"] for x in after] == [x["ids"] for x in before]
    assert [x["distances"] for x in after] == [x["distances"] for x in before]
    # a dropped collection comes back from its snapshot
    assert client.delete("/v1/collections/saq_copy").status_code == 200
    assert client.post(restore, json={"target": "saq_copy"}).status_code == 201
    assert client.get("/v1/collections/saq_copy").json()["count"] == 2000


# --- restart, read-only, API key ----------------------------------------------------------

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def restarted(tmp_path_factory):
    """A collection written by one server, then served by a second process with --read-only and
    --api-key: (client with the key, client without, data dir, vectors, query body, results before)."""
    data_dir = tmp_path_factory.mktemp("restart") / "data"
    X, Q = clustered(1500, DIM, seed=31), clustered(15, DIM, seed=32)
    body = {"vectors": Q.tolist(), "k": 10, "params": {"nprobe": 8}}
    with running_server(data_dir, log_name="a.log") as url, httpx.Client(base_url=url, timeout=60) as c:
        wait_ready(c)
        make_collection(c, "keep", X[:1200])
        c.post("/v1/collections/keep/points/delete", json={"ids": list(range(100))})
        c.put("/v1/collections/keep/points", json={"ids": list(range(1200, 1500)), "vectors": X[1200:].tolist(),
                                                   "payloads": [{"i": i} for i in range(1200, 1500)]})
        assert c.post("/v1/collections/keep/persist").json()["count"] == 1400
        before = c.post("/v1/collections/keep/query/batch", json=body).json()["results"]
    with running_server(data_dir, "--read-only", "--api-key", KEY, log_name="b.log") as url, \
            httpx.Client(base_url=url, timeout=60, headers={"api-key": KEY}) as keyed, \
            httpx.Client(base_url=url, timeout=60) as anonymous:
        wait_ready(anonymous)
        yield keyed, anonymous, data_dir, X, body, before


def test_restart_keeps_every_persisted_point(restarted):
    c, _, _, X, body, before = restarted
    info = c.get("/v1/collections/keep").json()
    assert info["count"] == 1400 and info["trained"] and info["read_only"]
    got = c.post("/v1/collections/keep/points/get", json={"ids": list(range(1500))}).json()
    assert [p["id"] for p in got["data"]] == list(range(100, 1500))
    assert all(p["payload"] == {"i": p["id"]} for p in got["data"])
    np.testing.assert_array_equal(np.array([p["vector"] for p in got["data"]], np.float32), X[100:])
    after = c.post("/v1/collections/keep/query/batch", json=body).json()["results"]
    assert [r["ids"] for r in after] == [r["ids"] for r in before]
    assert [r["distances"] for r in after] == [r["distances"] for r in before]


def test_clean_shutdown_persists_acknowledged_writes(tmp_path, data):
    """Writes nobody persisted survive a SIGTERM: the server persists them on the way down,
    without the training that a persist past the threshold would start."""
    X, _ = data
    data_dir = tmp_path / "data"
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        wait_ready(client)
        r = client.put("/v1/collections/w", json={"dim": DIM, "spec": "IVF4,Flat", "train_threshold": 20})
        assert r.status_code == 201
        for start in range(0, 30, 10):
            r = client.put("/v1/collections/w/points", json={"ids": list(range(start, start + 10)),
                                                            "vectors": X[start:start + 10].tolist()})
            assert r.status_code == 200
        assert client.post("/v1/collections/w/points/delete", json={"ids": [3]}).status_code == 200
        assert client.get("/v1/collections/w").json()["count"] == 29
    with Collection.open(data_dir / "w", read_only=True) as col:
        assert col.count == 29 and [p.id for p in col.get([2, 3, 29])] == [2, 29] and not col.is_trained
        np.testing.assert_array_equal(col.get([29])[0].vector, X[29])


def test_read_only_refuses_every_write(restarted):
    c, _, data_dir, _, _, _ = restarted
    files = sorted(p.name for p in (data_dir / "keep").iterdir())
    writes = [("PUT", "/v1/collections/new1", {"dim": 4}), ("DELETE", "/v1/collections/keep", None),
              ("PUT", "/v1/collections/keep/points", {"ids": [1], "vectors": [[0.0] * DIM]}),
              ("POST", "/v1/collections/keep/points/delete", {"ids": [100]}),
              ("POST", "/v1/collections/keep/persist", None), ("POST", "/v1/collections/keep/compact", None),
              ("POST", "/v1/collections/keep/train", None), ("POST", "/v1/collections/keep/snapshots", None),
              ("POST", "/v1/collections/keep/snapshots/x/restore", {"target": "y"}),
              ("PUT", "/v1/collections/keep/payload-indexes/i", {"kind": "integer"}),
              ("DELETE", "/v1/collections/keep/payload-indexes/i", None)]
    for method, path, payload in writes:
        assert_error(c.request(method, path, json=payload), 403, "read_only")
    assert c.get("/v1/collections/keep").json()["count"] == 1400
    assert sorted(p.name for p in (data_dir / "keep").iterdir()) == files
    assert sorted(os.listdir(data_dir)) == ["keep"]


def test_api_key(restarted):
    keyed, anonymous, _, _, _, _ = restarted
    assert anonymous.get("/healthz").status_code == 200 and anonymous.get("/readyz").status_code == 200
    for path in ["/", "/v1/collections", "/metrics", "/openapi.json", "/docs", "/v1/collections/keep"]:
        err = assert_error(anonymous.get(path), 401, "unauthorized")
        assert "api-key" in err["message"]
        assert keyed.get(path).status_code == 200
    assert anonymous.get("/v1/collections").headers["www-authenticate"] == "Bearer"
    assert_error(anonymous.get("/v1/collections", headers={"api-key": KEY + "x"}), 401)
    assert_error(anonymous.get("/v1/collections", headers={"api-key": KEY[:-1]}), 401)
    assert_error(anonymous.get("/v1/collections", headers={"authorization": f"Basic {KEY}"}), 401)
    r = anonymous.get("/v1/collections", headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.json()["count"] == 1
    # the key is checked before anything else: a write without it is 401, with it 403 (read-only)
    assert_error(anonymous.put("/v1/collections/k1", json={"dim": 4}), 401)
    assert_error(keyed.put("/v1/collections/k1", json={"dim": 4}), 403)
    assert_error(anonymous.post("/v1/collections/keep/query", json={"vector": [0.0] * DIM}), 401)
    assert keyed.post("/v1/collections/keep/query", json={"vector": [0.0] * DIM}).status_code == 200


def test_serve_help_lists_options_and_env_vars():
    from click.testing import CliRunner

    from cli.main import cli

    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    for needle in ("--host", "--port", "--max-request-mb", "--threads", "--read-only", "--api-key",
                   "ANNVQ_API_KEY", "ANNVQ_DATA_DIR", "127.0.0.1"):
        assert needle in result.output
