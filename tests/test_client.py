"""annvq.Client against a real `annvq serve` process: every call of a RemoteCollection next to the
same call on an in-process Collection, snapshots, and the exceptions raised for the service's
error codes."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from naive import clustered
from service.process import wait_ready
from test_service import running_server

import annvq
from annvq import Client, Collection, ServiceError
from annvq.client import error_from_response
from annvq.errors import (CollectionExistsError, CollectionNotFoundError, DimensionMismatchError,
                          InvalidParameterError, InvalidVectorsError)
from annvq.filters import InvalidFilterError

pytestmark = pytest.mark.slow

DIM, N = 12, 500
SPEC = "IVF8,Flat"
INDEXES = {"label": "integer", "color": "keyword"}
COLORS = ("red", "green", "blue")
LABEL_2 = {"must": [{"key": "label", "match": {"value": 2}}]}


def payloads(ids) -> list[dict]:
    return [{"label": int(i) % 4, "color": COLORS[int(i) % 3]} for i in ids]


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """(client, remote collection `c`, in-process twin, X, Q), both filled, trained, persisted,
    and 40 more points in the buffer."""
    X, Q = clustered(N + 40, DIM, seed=61), clustered(10, DIM, seed=62)
    root = tmp_path_factory.mktemp("client")
    twin = Collection.create(root / "twin", DIM, spec=SPEC, payload_indexes=INDEXES)
    with running_server(root / "data", log_name="client.log") as url, Client(url, timeout=60) as client:
        with httpx.Client(base_url=url, timeout=60) as raw:
            wait_ready(raw)
        col = client.create_collection("c", DIM, spec=SPEC, payload_indexes=INDEXES)
        ids = np.arange(N)
        assert col.upsert(ids, X[:N], payloads(ids), batch_size=200) == N
        twin.upsert(ids, X[:N], payloads(ids))
        col.train()
        col.persist()
        twin.train()
        twin.persist()
        more = np.arange(N, N + 40)
        assert col.upsert(more, X[N:], payloads(more)) == 40
        twin.upsert(more, X[N:], payloads(more))
        yield client, col, twin, X, Q
    twin.persist()
    twin.close()


def test_describe_and_count(remote):
    client, col, twin, _, _ = remote
    assert col.count == twin.count == N + 40
    assert col.dim == DIM and col.is_trained and col.payload_indexes == INDEXES
    assert "c" in [c["name"] for c in client.collections()]
    assert client.health() == {"status": "ok"} and client.ready()
    assert col.count_matching(LABEL_2) == twin.count_matching(LABEL_2)
    assert repr(col).startswith("RemoteCollection(")


@pytest.mark.parametrize("kwargs", [{"k": 10, "nprobe": 2}, {"k": 3, "exact": True}, {"k": 5, "filter": LABEL_2},
                                    {"k": 10, "nprobe": 8, "rerank": 20}])
def test_search_equals_in_process(remote, kwargs):
    _, col, twin, _, Q = remote
    D, I = col.search(Q, **kwargs)
    D0, I0 = twin.search(Q, **kwargs)
    assert I.dtype == np.int64 and D.dtype == np.float32
    assert np.array_equal(I, I0)
    np.testing.assert_allclose(D, D0, rtol=1e-5, atol=1e-5)


def test_query_with_payloads_and_one_vector(remote):
    _, col, twin, _, Q = remote
    hits = col.query(Q[:3], 5, filter=LABEL_2, with_payload=True)
    ref = twin.query(Q[:3], 5, filter=LABEL_2)
    assert np.array_equal(hits.ids, ref.ids) and hits.found.tolist() == ref.found.tolist()
    assert hits.payloads == [ref.payloads(qi) for qi in range(3)]
    assert hits.strategy == ref.strategy and hits.nprobe.tolist() == ref.nprobe.tolist()
    D, I = col.search(Q[0], 4)  # a 1-D vector is one query
    assert I.shape == (1, 4) and np.array_equal(I, twin.search(Q[:1], 4)[1])


def test_get_delete_scroll(remote):
    _, col, twin, X, _ = remote
    got = col.get([3, 99999, 520])
    assert [p.id for p in got] == [3, 520]
    assert np.array_equal(got[0].vector, X[3]) and got[1].payload == payloads([520])[0]
    assert col.get([3], with_vectors=False)[0].vector is None
    page, cursor = col.scroll(LABEL_2, limit=5)
    ref_page, ref_cursor = twin.scroll(LABEL_2, limit=5)
    assert [p.id for p in page] == [p.id for p in ref_page] and cursor == ref_cursor
    # delete on both (restored at the end, so the other tests keep their data)
    assert col.delete([7, 8, 123456]) == twin.delete([7, 8, 123456]) == 2
    assert col.get([7, 8]) == [] and col.count == twin.count
    assert col.upsert([7, 8], X[[7, 8]], payloads([7, 8])) == 2
    twin.upsert([7, 8], X[[7, 8]], payloads([7, 8]))


def test_upsert_in_batches_with_two_workers(remote):
    client, _, _, X, Q = remote
    col = client.create_collection("batches", DIM, spec="Flat")
    assert col.upsert(np.arange(100), X[:100], batch_size=15, workers=2) == 100
    # a repeated id: batches go in order, the last write wins
    assert col.upsert([1, 2, 1], X[[5, 6, 7]], batch_size=1, workers=2) == 3
    assert col.count == 100 and np.array_equal(col.get([1])[0].vector, X[7])
    assert np.array_equal(col.search(Q, 3, exact=True)[1][:, 0], col.search(Q, 3)[1][:, 0])
    col.drop()


def test_snapshot_restore_and_drop(remote):
    client, col, _, _, Q = remote
    snap = col.snapshot()
    assert snap["collection"] == "c" and snap["count"] == col.count
    assert snap["id"] in [s["id"] for s in col.snapshots()]
    copy = col.restore(snap["id"], target="c_copy")
    assert copy.name == "c_copy" and copy.count == col.count
    assert np.array_equal(copy.search(Q, 5, exact=True)[1], col.search(Q, 5, exact=True)[1])
    copy.drop()
    with pytest.raises(CollectionNotFoundError):
        copy.count


def test_errors_raise_annvq_exceptions_by_code(remote):
    client, col, _, X, Q = remote
    with pytest.raises(CollectionExistsError) as exc:
        client.create_collection("c", DIM)
    assert isinstance(exc.value, ServiceError) and exc.value.status == 409 and exc.value.code == "collection_exists"
    with pytest.raises(CollectionNotFoundError, match="nope"):
        client.collection("nope").search(Q, 3)
    with pytest.raises(DimensionMismatchError) as exc:
        col.upsert([9000], X[:1, :5])
    assert exc.value.code == "dimension_mismatch" and "expects 12" in str(exc.value)
    with pytest.raises(DimensionMismatchError):
        col.search(Q[:, :5], 3)
    bad = X[:2].copy()
    bad[1, 0] = np.nan
    with pytest.raises(InvalidVectorsError) as exc:
        col.upsert([9000, 9001], bad)
    assert exc.value.code == "non_finite_value"
    with pytest.raises(InvalidFilterError, match="nope"):
        col.search(Q, 3, filter={"must": [{"key": "nope", "match": {"value": 1}}]})
    with pytest.raises(InvalidParameterError) as exc:
        col.search(Q, 3, nprobe=100)
    assert exc.value.code == "invalid_parameter" and "nprobe" in str(exc.value)
    with pytest.raises(InvalidParameterError) as exc:
        col.search(Q, 0)
    assert exc.value.code == "out_of_range"
    with pytest.raises(InvalidParameterError):  # duplicate ids: the collection's own check
        col.upsert([9000, 9000], X[:2])
    with pytest.raises(ServiceError) as exc:
        client.create_collection("bad name!", DIM)
    assert exc.value.status == 400
    assert col.get([9000, 9001]) == []  # refused writes changed nothing
    # client-side checks before any request
    with pytest.raises(InvalidVectorsError):
        col.upsert([1, 2], X[:1])
    with pytest.raises(InvalidParameterError):
        col.upsert(["a"], X[:1])


def test_unknown_codes_are_service_errors():
    exc = error_from_response(401, {"error": {"code": "unauthorized", "message": "Missing key.", "details": None}})
    assert type(exc) is ServiceError and exc.status == 401 and exc.code == "unauthorized" and str(exc) == "Missing key."
    exc = error_from_response(502, None, "Bad Gateway")
    assert type(exc) is ServiceError and exc.code is None and str(exc) == "Bad Gateway"
    exc = error_from_response(400, {"error": {"code": "dimension_mismatch", "message": "m", "details": None}})
    assert isinstance(exc, DimensionMismatchError) and isinstance(exc, ServiceError)
    assert isinstance(exc, annvq.AnnvqError) and isinstance(exc, ValueError)
    assert annvq.Client is Client
