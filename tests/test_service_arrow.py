"""Arrow IPC bodies on the HTTP service, end to end against a real `annvq serve` process: upsert
and batch query with Arrow bodies, Arrow answers, equality with the JSON path and with an
in-process Collection on the same data, and the error contract (the same codes as JSON where the
collection decides, 400 invalid_arrow for a body that is not the table asked for)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pyarrow as pa
import pytest

from naive import clustered
from service.process import wait_ready
from test_service import assert_error, running_server

from annvq import Collection

pytestmark = pytest.mark.slow

ARROW = "application/vnd.apache.arrow.stream"
DIM, N = 16, 600
BASE = "/v1/collections/arr"
SPEC = "IVF8,Flat"
INDEXES = {"label": "integer"}
LABEL_1 = {"must": [{"key": "label", "match": {"value": 1}}]}


def payload(i: int) -> dict | None:
    return None if i % 7 == 6 else {"label": i % 3, "name": f"p{i}"}


def table_bytes(columns: dict, metadata=None) -> bytes:
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def vector_column(X: np.ndarray) -> pa.Array:
    X = np.ascontiguousarray(X, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), X.shape[1])


def upsert_body(ids, X, payloads=None) -> bytes:
    cols = {"id": pa.array(np.asarray(ids, dtype=np.int64)), "vector": vector_column(X)}
    if payloads is not None:
        cols["payload"] = pa.array([None if p is None else json.dumps(p) for p in payloads], pa.string())
    return table_bytes(cols)


def put_arrow(client, body: bytes, path=BASE + "/points"):
    return client.put(path, content=body, headers={"content-type": ARROW})


def query_arrow(client, Q, *, accept=ARROW, path=BASE + "/query/batch", **params):
    return client.post(path, content=table_bytes({"vector": vector_column(Q)}), params=params,
                       headers={"content-type": ARROW, "accept": accept})


def read_answer(r: httpx.Response) -> pa.Table:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(ARROW)
    return pa.ipc.open_stream(r.content).read_all()


def matrix(table: pa.Table, name: str) -> np.ndarray:
    arr = table.column(name).combine_chunks()
    return arr.flatten().to_numpy().reshape(len(arr), arr.type.list_size)


@pytest.fixture(scope="module")
def aserver(tmp_path_factory):
    """(client, X, Q, in-process twin): collection `arr` filled through Arrow upserts (two
    batches), trained and persisted, then 50 more points in the buffer; the twin got the same
    calls in-process."""
    X, Q = clustered(N + 50, DIM, seed=51), clustered(8, DIM, seed=52)
    root = tmp_path_factory.mktemp("arrow")
    twin = Collection.create(root / "twin", DIM, spec=SPEC, payload_indexes=INDEXES)
    pays = [payload(i) for i in range(N + 50)]
    with running_server(root / "data", "--max-request-mb", "1", log_name="arrow.log") as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        wait_ready(client)
        r = client.put(BASE, json={"dim": DIM, "spec": SPEC, "payload_indexes": INDEXES})
        assert r.status_code == 201, r.text
        for lo, hi in ((0, 300), (300, N)):
            r = put_arrow(client, upsert_body(range(lo, hi), X[lo:hi], pays[lo:hi]))
            assert r.status_code == 200 and r.json() == {"upserted": hi - lo, "count": hi}, r.text
            twin.upsert(np.arange(lo, hi), X[lo:hi], pays[lo:hi])
        assert client.post(BASE + "/train").status_code == 200
        assert client.post(BASE + "/persist").status_code == 200
        twin.train()
        twin.persist()
        r = put_arrow(client, upsert_body(range(N, N + 50), X[N:], pays[N:]))
        assert r.status_code == 200 and r.json()["count"] == N + 50
        twin.upsert(np.arange(N, N + 50), X[N:], pays[N:])
        yield client, X, Q, twin
    twin.persist()
    twin.close()


def test_arrow_upsert_reads_back_through_json(aserver):
    client, X, _, _ = aserver
    ids = [0, 6, 13, 599, 620]
    got = client.post(BASE + "/points/get", json={"ids": ids}).json()["data"]
    assert [p["id"] for p in got] == ids
    for p in got:
        assert np.array_equal(np.array(p["vector"], dtype=np.float32), X[p["id"]])
        assert p["payload"] == payload(p["id"])


@pytest.mark.parametrize("params", [{"k": 10, "nprobe": 3}, {"k": 5, "nprobe": 8},
                                    {"k": 7, "nprobe": 2, "filter": json.dumps(LABEL_1)}],
                         ids=["nprobe3", "all-lists", "filter"])
def test_arrow_search_equals_in_process_and_json(aserver, params):
    client, _, Q, twin = aserver
    flt = json.loads(params["filter"]) if "filter" in params else None
    table = read_answer(query_arrow(client, Q, **params))
    ids, dist = matrix(table, "ids"), matrix(table, "distances")
    assert ids.dtype == np.int64 and dist.dtype == np.float32 and ids.shape == (len(Q), params["k"])
    D, I = twin.search(Q, params["k"], nprobe=params["nprobe"], filter=flt)
    assert np.array_equal(ids, I)
    np.testing.assert_allclose(dist, D, rtol=1e-5, atol=1e-5)
    # the JSON answer to the same query, Arrow body or JSON body
    body = {"vectors": Q.tolist(), "k": params["k"], "params": {"nprobe": params["nprobe"]}, "filter": flt,
            "with_payload": False}
    results = client.post(BASE + "/query/batch", json=body).json()["results"]
    assert [r["ids"] for r in results] == ids.tolist()
    assert table.column("found").to_pylist() == [r["found"] for r in results]
    assert table.column("nprobe").to_pylist() == [r["nprobe"] for r in results]
    strategy = table.schema.metadata[b"strategy"].decode()
    assert {r["strategy"] for r in results} == {strategy} and "exact" in strategy  # the buffer
    assert float(table.schema.metadata[b"took_ms"]) > 0
    if flt is not None:
        assert all(payload(i)["label"] == 1 for i in ids.ravel())


def test_json_body_with_arrow_answer_and_payloads(aserver):
    client, _, Q, _ = aserver
    body = {"vectors": Q[:3].tolist(), "k": 4, "params": {"nprobe": 8}}
    r = client.post(BASE + "/query/batch", json=body, headers={"accept": ARROW})
    table = read_answer(r)
    ids = matrix(table, "ids").tolist()
    assert table.column("payloads").to_pylist() == [
        [None if payload(i) is None else json.dumps(payload(i), separators=(",", ":")) for i in row] for row in ids]
    results = client.post(BASE + "/query/batch", json=body).json()["results"]
    assert [r["ids"] for r in results] == ids
    # an Arrow body with a JSON answer (no Accept): the JSON shape
    r = query_arrow(client, Q[:3], accept="application/json", k=4, nprobe=8, with_payload="true")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert [res["ids"] for res in r.json()["results"]] == ids
    assert [res["payloads"] for res in r.json()["results"]] == [res["payloads"] for res in results]
    # fewer points than k: padding as Collection.search reports it
    table = read_answer(query_arrow(client, Q[:1], k=5, filter=json.dumps({"must": [{"has_id": [1, 2]}]})))
    row = matrix(table, "ids")[0].tolist()
    assert sorted(row[:2]) == [1, 2] and row[2:] == [-1, -1, -1]
    assert table.column("found").to_pylist() == [2] and np.isinf(matrix(table, "distances")[0, 2:]).all()


def test_arrow_error_contract(aserver):
    client, X, Q, _ = aserver
    count = client.get(BASE).json()["count"]
    new = np.arange(5000, 5003)
    # the collection's checks: the same codes as the JSON path
    assert_error(put_arrow(client, upsert_body(new, X[:3, :8])), 400, "dimension_mismatch")
    bad = X[:3].copy()
    bad[1, 4] = np.nan
    err = assert_error(put_arrow(client, upsert_body(new, bad)), 400, "non_finite_value")
    assert "row 1" in err["message"]
    bad[1, 4] = np.inf
    assert_error(put_arrow(client, upsert_body(new, bad)), 400, "non_finite_value")
    assert_error(put_arrow(client, upsert_body([5000, 5000, 5001], X[:3])), 400, "invalid_parameter")
    assert_error(put_arrow(client, upsert_body(new, X[:3], [{"label": "x"}, None, None])), 400)
    null_vec = table_bytes({"id": pa.array([5000, 5001], pa.int64()),
                            "vector": pa.array([X[0].tolist(), None], pa.list_(pa.float32(), DIM))})
    assert_error(put_arrow(client, null_vec), 400, "invalid_vectors")
    ragged = table_bytes({"id": pa.array([5000, 5001], pa.int64()),
                          "vector": pa.array([X[0].tolist(), X[1, :5].tolist()], pa.list_(pa.float32()))})
    assert "row 1" in assert_error(put_arrow(client, ragged), 400, "dimension_mismatch")["message"]
    # a body that is not the table asked for
    assert_error(put_arrow(client, b"not an arrow stream"), 400, "invalid_arrow")
    assert_error(put_arrow(client, upsert_body(new, X[:3])[:-40]), 400, "invalid_arrow")
    assert_error(put_arrow(client, table_bytes({"id": pa.array(new)})), 400, "invalid_arrow")
    assert_error(put_arrow(client, table_bytes({"vector": vector_column(X[:3])})), 400, "invalid_arrow")
    extra = table_bytes({"id": pa.array(new), "vector": vector_column(X[:3]), "colour": pa.array([1, 2, 3])})
    assert "colour" in assert_error(put_arrow(client, extra), 400, "invalid_arrow")["message"]
    strings = table_bytes({"id": pa.array(["a", "b", "c"]), "vector": vector_column(X[:3])})
    assert_error(put_arrow(client, strings), 400, "invalid_arrow")
    not_object = table_bytes({"id": pa.array(new), "vector": vector_column(X[:3]),
                              "payload": pa.array(["[1]", None, "{}"])})
    assert_error(put_arrow(client, not_object), 400, "invalid_arrow")
    empty = table_bytes({"id": pa.array([], pa.int64()), "vector": vector_column(np.zeros((0, DIM)))})
    assert_error(put_arrow(client, empty), 400, "invalid_arrow")
    too_big = upsert_body(np.arange(20_000), np.zeros((20_000, DIM)))  # over --max-request-mb 1
    assert_error(put_arrow(client, too_big), 413, "body_too_large")
    # nothing was written
    assert client.get(BASE).json()["count"] == count
    assert client.post(BASE + "/points/get", json={"ids": new.tolist()}).json()["count"] == 0
    # batch query
    assert_error(query_arrow(client, Q[:, :8]), 400, "dimension_mismatch")
    badq = Q.copy()
    badq[0, 0] = np.nan
    assert_error(query_arrow(client, badq), 400, "non_finite_value")
    assert_error(query_arrow(client, Q, k=0), 400, "out_of_range")
    assert_error(query_arrow(client, Q, nprobe=99), 400, "invalid_parameter")
    assert_error(query_arrow(client, Q, k="many"), 422, "validation_error")
    assert_error(query_arrow(client, Q, kk=3), 422, "validation_error")
    assert_error(query_arrow(client, Q, filter="{not json"), 400, "invalid_filter")
    assert_error(query_arrow(client, Q, filter=json.dumps({"must": [{"key": "nope", "match": {"value": 1}}]})),
                 400, "invalid_filter")
    assert_error(query_arrow(client, Q, with_vector="true"), 400, "invalid_parameter")
    r = client.post(BASE + "/query/batch", content=b"garbage", headers={"content-type": ARROW})
    assert_error(r, 400, "invalid_arrow")
    assert_error(query_arrow(client, Q, path="/v1/collections/nope/query/batch"), 404, "collection_not_found")
