"""Filtered search over HTTP, end to end against a real `annvq serve` process: payload indexes
(declared at create, added and dropped), filtered query and batch query, count, scroll with its
cursor, and the 400 contract for bad filters. Small data (dim 8, 440 points) keeps it quick."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from naive import clustered
from service.process import wait_ready
from test_service import assert_error, raw_post, running_server

pytestmark = pytest.mark.slow

DIM = 8
N, BUFFERED = 400, 40  # trained and persisted, then a few more left in the write buffer
COLORS = ("red", "green", "blue")
INDEXES = {"label": "integer", "color": "keyword"}
BASE = "/v1/collections/items"


def payload(i: int) -> dict:
    """label 0..3 (absent on every tenth point), a color, an unindexed price."""
    p = {"color": COLORS[i % 3], "price": float(i)}
    if i % 10 != 9:
        p["label"] = i % 4
    return p


PAYLOADS = [payload(i) for i in range(N + BUFFERED)]
LABEL_1 = {"must": [{"key": "label", "match": {"value": 1}}]}
# label 1 or 2, not blue, not in a short id list: a bit of every clause
MIXED = {"must": [{"key": "label", "match": {"any": [1, 2]}}],
         "should": [{"key": "color", "match": {"value": "red"}}, {"key": "color", "match": {"value": "green"}}],
         "must_not": [{"has_id": [1, 2, 5, 6]}]}


def passes(flt: dict, i: int) -> bool:
    """The Python oracle of the filters these tests use."""
    p = PAYLOADS[i]
    if flt is LABEL_1:
        return p.get("label") == 1
    if flt is MIXED:
        return p.get("label") in (1, 2) and p["color"] in ("red", "green") and i not in (1, 2, 5, 6)
    raise AssertionError(flt)


def allowed(flt: dict) -> np.ndarray:
    return np.array([i for i in range(N + BUFFERED) if passes(flt, i)])


def filtered_knn(X, Q, flt, k) -> list[list[int]]:
    ids = allowed(flt)
    dist = np.linalg.norm(Q[:, None].astype(np.float64) - X[ids][None], axis=2)
    return ids[np.argsort(dist, axis=1, kind="stable")[:, :k]].tolist()


@pytest.fixture(scope="module")
def fserver(tmp_path_factory):
    """(client, X, Q): collection `items` (IVF4,Flat, payload indexes label and color), points
    0..399 trained and persisted, 400..439 in the buffer."""
    X, Q = clustered(N + BUFFERED, DIM, seed=41), clustered(6, DIM, seed=42)
    data_dir = tmp_path_factory.mktemp("filter") / "data"
    with running_server(data_dir, log_name="filter.log") as url, httpx.Client(base_url=url, timeout=60) as client:
        wait_ready(client)
        r = client.put(BASE, json={"dim": DIM, "spec": "IVF4,Flat", "payload_indexes": INDEXES})
        assert r.status_code == 201 and r.json()["payload_indexes"] == INDEXES, r.text
        r = client.put(BASE + "/points", json={"ids": list(range(N)), "vectors": X[:N].tolist(),
                                               "payloads": PAYLOADS[:N]})
        assert r.status_code == 200, r.text
        assert client.post(BASE + "/train").json()["trained"] is True
        r = client.put(BASE + "/points", json={"ids": list(range(N, N + BUFFERED)), "vectors": X[N:].tolist(),
                                               "payloads": PAYLOADS[N:]})
        assert r.status_code == 200 and r.json()["count"] == N + BUFFERED, r.text
        yield client, X, Q


def test_collection_shows_its_payload_indexes(fserver):
    client, _, _ = fserver
    assert client.get(BASE).json()["payload_indexes"] == INDEXES
    listed = {c["name"]: c for c in client.get("/v1/collections").json()["data"]}
    assert listed["items"]["payload_indexes"] == INDEXES
    paths = client.get("/openapi.json").json()["paths"]
    assert {BASE.replace("items", "{name}") + p for p in ("/points/count", "/points/scroll",
                                                           "/payload-indexes/{field}")} <= set(paths)


@pytest.mark.parametrize("flt", [LABEL_1, MIXED], ids=["label", "mixed"])
def test_filtered_query_returns_only_matching_points(fserver, flt):
    client, X, Q = fserver
    truth = filtered_knn(X, Q, flt, 10)
    # every list read (IVF4,Flat is then exact): the true filtered neighbours
    r = client.post(BASE + "/query/batch", json={"vectors": Q.tolist(), "k": 10, "filter": flt,
                                                 "params": {"nprobe": 4}})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [res["ids"] for res in results] == truth
    for res in results:
        assert res["found"] == 10 and res["nprobe"] == 4 and res["strategy"]
        assert all(passes(flt, i) for i in res["ids"])
        assert res["payloads"] == [PAYLOADS[i] for i in res["ids"]]
    # default nprobe: still only matching points, and k of them (the search reads more lists if needed)
    buffered = client.get(BASE).json()["stats"]["buffered"]
    for q in Q:
        one = client.post(BASE + "/query", json={"vector": q.tolist(), "k": 10, "filter": flt}).json()
        assert one["found"] == len(one["ids"]) == 10 and 1 <= one["nprobe"] <= 4
        assert all(passes(flt, i) for i in one["ids"]) and one["distances"] == sorted(one["distances"])
        assert ("exact" in one["strategy"].split("+")) == (buffered > 0)  # the buffer is brute-forced
    exact = client.post(BASE + "/query", json={"vector": Q[0].tolist(), "k": 10, "filter": flt,
                                               "params": {"exact": True}}).json()
    assert exact["ids"] == truth[0]


def test_filter_matching_fewer_than_k(fserver):
    client, _, Q = fserver
    few = {"must": [{"has_id": [3, 7, 410, 99999]}]}
    r = client.post(BASE + "/query/batch", json={"vectors": Q[:2].tolist(), "k": 10, "filter": few}).json()
    assert [(sorted(res["ids"]), res["found"]) for res in r["results"]] == [([3, 7, 410], 3)] * 2
    none = {"must": [{"key": "color", "match": {"value": "purple"}}]}
    r = client.post(BASE + "/query", json={"vector": Q[0].tolist(), "k": 5, "filter": none}).json()
    assert (r["ids"], r["found"], r["payloads"]) == ([], 0, [])
    # no filter, null and {} all mean every point
    for body in ({}, {"filter": None}, {"filter": {}}):
        r = client.post(BASE + "/query", json={"vector": Q[0].tolist(), "k": 3, **body}).json()
        assert r["found"] == 3


def test_count(fserver):
    client, _, _ = fserver
    for flt in (LABEL_1, MIXED):
        assert client.post(BASE + "/points/count", json={"filter": flt}).json() == {"count": len(allowed(flt))}
    assert client.post(BASE + "/points/count", json={}).json() == {"count": N + BUFFERED}
    assert client.post(BASE + "/points/count", json={"filter": None}).json() == {"count": N + BUFFERED}
    empty = {"must": [{"is_empty": {"key": "label"}}]}
    assert client.post(BASE + "/points/count", json={"filter": empty}).json() == {"count": (N + BUFFERED) // 10}


def test_scroll_pages_through_every_match_once_in_id_order(fserver):
    client, X, _ = fserver
    seen, cursor, pages = [], None, 0
    while True:
        r = client.post(BASE + "/points/scroll", json={"filter": MIXED, "limit": 7, "cursor": cursor})
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["count"] == len(page["data"]) <= 7
        seen += [p["id"] for p in page["data"]]
        assert all(p["payload"] == PAYLOADS[p["id"]] and p["vector"] is None for p in page["data"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor > seen[-1]
    assert seen == allowed(MIXED).tolist()  # each once, in id order, buffered points included
    assert pages == -(-len(seen) // 7)
    # vectors on request, payloads off; without a filter, every point
    r = client.post(BASE + "/points/scroll", json={"limit": 3, "cursor": 398, "with_vector": True,
                                                   "with_payload": False}).json()
    assert [p["id"] for p in r["data"]] == [398, 399, 400] and r["next_cursor"] == 401
    assert all(p["payload"] is None for p in r["data"])
    np.testing.assert_array_equal(np.array([p["vector"] for p in r["data"]], np.float32), X[398:401])
    r = client.post(BASE + "/points/scroll", json={"limit": 10_000}).json()
    assert r["count"] == N + BUFFERED and r["next_cursor"] is None
    for bad in ({"limit": 0}, {"limit": 10_001}, {"cursor": -1}):
        assert_error(client.post(BASE + "/points/scroll", json=bad), 400, "out_of_range")


def test_create_and_drop_payload_index(fserver):
    client, _, Q = fserver
    cheap = {"must": [{"key": "price", "range": {"lt": 50}}]}
    err = assert_error(client.post(BASE + "/points/count", json={"filter": cheap}), 400, "invalid_filter")
    assert "'price'" in err["message"] and "no payload index" in err["message"]
    r = client.put(BASE + "/payload-indexes/price", json={"kind": "float"})
    assert r.status_code == 200, r.text
    assert r.json()["payload_indexes"] == {**INDEXES, "price": "float"}
    assert r.json()["count"] == N + BUFFERED  # the buffer was persisted, nothing lost
    assert client.post(BASE + "/points/count", json={"filter": cheap}).json() == {"count": 50}
    hits = client.post(BASE + "/query", json={"vector": Q[0].tolist(), "k": 5, "filter": cheap}).json()
    assert hits["found"] == 5 and all(i < 50 for i in hits["ids"])
    assert client.put(BASE + "/payload-indexes/price", json={"kind": "float"}).status_code == 200  # again: no-op
    # a stored value of another kind: refused naming the point, nothing changes
    r = client.put(BASE + "/payload-indexes/color", json={"kind": "integer"})
    err = assert_error(r, 400, "invalid_parameter")
    assert "'color'" in err["message"] and "point " in err["message"]
    assert_error(client.put(BASE + "/payload-indexes/color", json={"kind": "text"}), 422, "validation_error")
    assert_error(client.put(BASE + "/payload-indexes/color", json={}), 422, "validation_error")
    assert client.get(BASE).json()["payload_indexes"] == {**INDEXES, "price": "float"}
    # drop: filters on the field are refused again; dropping it twice is a 404
    r = client.delete(BASE + "/payload-indexes/price")
    assert r.status_code == 200 and r.json()["payload_indexes"] == INDEXES
    assert_error(client.post(BASE + "/points/count", json={"filter": cheap}), 400, "invalid_filter")
    err = assert_error(client.delete(BASE + "/payload-indexes/price"), 404, "payload_index_not_found")
    assert "'price'" in err["message"]
    assert_error(client.put("/v1/collections/nosuch/payload-indexes/x", json={"kind": "integer"}),
                 404, "collection_not_found")
    assert_error(client.delete("/v1/collections/nosuch/payload-indexes/x"), 404, "collection_not_found")


def test_payload_indexes_at_create_are_checked(fserver):
    client, _, _ = fserver
    assert_error(client.put("/v1/collections/pi1", json={"dim": 4, "payload_indexes": {"a": "text"}}), 422)
    assert_error(client.put("/v1/collections/pi1", json={"dim": 4, "payload_indexes": {"": "integer"}}),
                 400, "invalid_parameter")
    assert_error(client.get("/v1/collections/pi1"), 404, "collection_not_found")


# (filter, words the message must contain)
BAD_FILTERS = [
    ([LABEL_1], "must be a JSON object (or null); got list"),
    ("label = 1", "must be a JSON object (or null); got str"),
    (3, "must be a JSON object (or null); got int"),
    ({"must": [3]}, "a condition must be an object"),
    ({"musts": []}, "unknown key"),
    ({"must": [{"key": "label", "match": {"value": 1}, "boost": 2}]}, "unknown key"),
    ({"must": [{"key": "label", "match": {"equals": 1}}]}, "unknown key"),
    ({"must": [{"key": "label"}]}, "unknown condition"),
    ({"must": "label"}, "list of conditions"),
    ({"must": [{"key": "price", "match": {"value": 1}}]}, "'price' has no payload index"),
    ({"must": [{"key": "label", "match": {"value": "one"}}]}, "'one' does not fit field 'label'"),
    ({"must": [{"key": "label", "match": {"value": True}}]}, "does not fit field 'label'"),
    ({"must": [{"key": "color", "match": {"any": ["red", 3]}}]}, "3 does not fit field 'color'"),
    ({"must": [{"key": "color", "range": {"gt": 1}}]}, "'range' needs an integer or float field"),
    ({"must": [{"key": "label", "range": {"gt": "1"}}]}, "must be numbers"),
    ({"must": [{"has_id": [-1]}]}, "has_id"),
]


@pytest.mark.parametrize("flt, message", BAD_FILTERS, ids=[m for _, m in BAD_FILTERS])
def test_bad_filter_is_400_naming_the_problem(fserver, flt, message):
    client, _, Q = fserver
    v = Q[0].tolist()
    calls = [(BASE + "/query", {"vector": v, "filter": flt}),
             (BASE + "/query/batch", {"vectors": [v, v], "filter": flt}),
             (BASE + "/points/count", {"filter": flt}),
             (BASE + "/points/scroll", {"filter": flt, "limit": 5})]
    for path, body in calls:
        err = assert_error(client.post(path, json=body), 400, "invalid_filter")
        assert message in err["message"] and err["message"].startswith("filter"), (path, err)
        assert err["details"] == {"type": "InvalidFilterError"}


def test_bad_filters_and_payloads_change_nothing(fserver):
    client, X, Q = fserver
    before = client.get(BASE).json()
    count = client.post(BASE + "/points/count", json={"filter": LABEL_1}).json()
    for flt, _ in BAD_FILTERS:
        client.post(BASE + "/query", json={"vector": Q[0].tolist(), "filter": flt})
    nan = raw_post(client, BASE + "/points/count",
                   '{"filter": {"must": [{"key": "label", "range": {"gt": NaN}}]}}')
    assert_error(nan, 400, "invalid_filter")
    too_deep = '{"filter": ' + '{"must": [' * 300 + "{}" + "]}" * 300 + "}"
    assert_error(raw_post(client, BASE + "/points/count", too_deep), 422, "validation_error")
    # an upsert whose indexed field holds another kind is refused whole
    r = client.put(BASE + "/points", json={"ids": [5000, 5001], "vectors": X[:2].tolist(),
                                           "payloads": [{"label": 1}, {"label": "one"}]})
    err = assert_error(r, 400, "invalid_parameter")
    assert "'label'" in err["message"] and "5001" in err["message"]
    after = client.get(BASE).json()
    assert (after["count"], after["payload_indexes"]) == (before["count"], before["payload_indexes"])
    assert client.post(BASE + "/points/count", json={"filter": LABEL_1}).json() == count
    assert client.post(BASE + "/points/get", json={"ids": [5000, 5001]}).json()["count"] == 0
