"""Collection: upsert/delete/get/search against exact oracles, persistence, reopen, snapshots,
training, faults during persist, concurrent readers and the writer lock."""

import errno
import os
import re
import threading

import numpy as np
import pyarrow as pa
import pytest

from annvq import Collection, Index, Point
from annvq.errors import (CollectionClosedError, CollectionExistsError, CollectionLockedError,
                          CollectionNotFoundError, DimensionMismatchError, InvalidParameterError,
                          InvalidSpecError, InvalidVectorsError, ReadOnlyError, StorageError,
                          UnsupportedFormatError)
from annvq.plan import QueryCache
from annvq.quantizers import CODECS
from annvq.storage import arrow, manifest
from naive import clustered, exact_knn

DIM = 32
#: small example specs per codec family; every CODECS entry must have one (see the test below)
EXAMPLE_SPECS = ["Flat", "IVF8,Flat", "IVF8,SAQ4", "IVF8,CAQ4", "IVF8,PQ8x8", "IVF8,LVQ8", "IVF8,LVQ4x8"]


def buildable_specs() -> list[str]:
    """The example specs whose codec module imports and constructs today."""
    out = []
    for spec in EXAMPLE_SPECS:
        try:
            Index(DIM, spec)
        except Exception:  # a codec still being written, or not registered yet
            continue
        out.append(spec)
    return out


@pytest.fixture(scope="module")
def data():
    return clustered(2400, DIM, seed=11), clustered(30, DIM, seed=12)


def test_every_registered_codec_has_an_example_spec():
    for pattern, _ in CODECS:
        assert any(re.fullmatch(pattern, s.split(",")[-1]) for s in EXAMPLE_SPECS), pattern


def live_oracle(X, ids, Q, k, metric="l2"):
    """Exact ids of the k nearest among the live rows (ids[i] is X[i]'s id)."""
    return ids[exact_knn(X, Q, k, metric)]


# --- life cycle --------------------------------------------------------------------------------
def test_create_open_close_errors(tmp_path):
    path = tmp_path / "c"
    with pytest.raises(CollectionNotFoundError):
        Collection.open(path)
    col = Collection.create(path, DIM, spec="IVF8,Flat")
    assert (col.dim, col.metric, col.spec, col.count, col.is_trained) == (DIM, "l2", "IVF8,Flat", 0, False)
    with pytest.raises(CollectionExistsError):
        Collection.create(path, DIM)
    with pytest.raises(CollectionLockedError):
        Collection.open(path)  # second writer, same process
    reader = Collection.open(path, read_only=True)
    with pytest.raises(ReadOnlyError):
        reader.upsert([1], np.zeros((1, DIM)))
    with pytest.raises(ReadOnlyError):
        reader.persist()
    col.close()
    with pytest.raises(CollectionClosedError):
        col.search(np.zeros(DIM), 1)
    with Collection.open(path) as again:  # lock released by close
        assert again.count == 0
    with pytest.raises(InvalidSpecError):
        Collection.create(tmp_path / "bad", DIM, spec="IVF8,Nope")
    with pytest.raises(InvalidParameterError, match="metric"):
        Collection.create(tmp_path / "bad", DIM, metric="hamming")


def test_newer_major_format_is_refused(tmp_path):
    Collection.create(tmp_path / "c", DIM, spec="Flat").close()
    name = manifest.read_current(str(tmp_path / "c"))
    path = tmp_path / "c" / name
    path.write_text(path.read_text().replace(f'"format_version": "{arrow.FORMAT_VERSION}"', '"format_version": "9.0"'))
    with pytest.raises(UnsupportedFormatError, match="9.0"):
        Collection.open(tmp_path / "c")


# --- input validation: refused whole, nothing written ------------------------------------------
BAD_UPSERTS = {
    "wrong dimension": (lambda X: ([0, 1], X[:2, :-1], None), DimensionMismatchError),
    "NaN": (lambda X: ([0, 1], np.where(np.arange(DIM) == 3, np.nan, X[:2]), None), InvalidVectorsError),
    "Inf": (lambda X: ([0, 1], np.where(np.arange(DIM) == 3, np.inf, X[:2]), None), InvalidVectorsError),
    "duplicate ids": (lambda X: ([5, 5], X[:2], None), InvalidParameterError),
    "id above int64": (lambda X: (np.array([1, 2 ** 63], np.uint64), X[:2], None), InvalidParameterError),
    "huge python int": (lambda X: ([1, 2 ** 70], X[:2], None), InvalidParameterError),
    "negative id": (lambda X: ([1, -1], X[:2], None), InvalidParameterError),
    "float id out of range": (lambda X: (np.array([1.0, 1e30]), X[:2], None), InvalidParameterError),
    "fractional id": (lambda X: (np.array([1.0, 2.5]), X[:2], None), InvalidParameterError),
    "ids/vectors length": (lambda X: ([1, 2, 3], X[:2], None), InvalidParameterError),
    "payload not a dict": (lambda X: ([1, 2], X[:2], [{"a": 1}, "text"]), InvalidParameterError),
    "payload not JSON": (lambda X: ([1, 2], X[:2], [{"a": 1}, {"b": object()}]), InvalidParameterError),
    "payload NaN": (lambda X: ([1, 2], X[:2], [{"a": float("nan")}, None]), InvalidParameterError),
    "payload count": (lambda X: ([1, 2], X[:2], [{"a": 1}]), InvalidParameterError),
}


@pytest.mark.parametrize("case", list(BAD_UPSERTS))
def test_bad_upsert_is_refused_whole(tmp_path, data, case):
    X, Q = data
    make, error = BAD_UPSERTS[case]
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat")
    col.upsert(np.arange(100), X[:100])
    col.persist()
    before = col.search(Q, 5)
    ids, vectors, payloads = make(X)
    with pytest.raises(error):
        col.upsert(ids, vectors, payloads)
    assert col.count == 100 and col.stats()["buffered"] == 0
    np.testing.assert_array_equal(col.search(Q, 5)[1], before[1])
    assert [p.id for p in col.get(np.arange(200))] == list(range(100))
    col.close()
    assert sorted(os.listdir(tmp_path / "c")) == sorted(["CURRENT", "LOCK", "MANIFEST-000001.json",
                                                         "MANIFEST-000002.json", "seg-000001.arrow"])


# --- search ------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_untrained_search_is_exact(tmp_path, data, metric):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, metric=metric, spec="IVF8,Flat", train_threshold=5000)
    ids = np.arange(1000) * 7 + 3
    col.upsert(ids[:600], X[:600])
    col.persist()
    col.upsert(ids[600:1000], X[600:1000])  # half persisted segment, half buffer
    D, I = col.search(Q, 10)
    np.testing.assert_array_equal(I, live_oracle(X[:1000], ids, Q, 10, metric))
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True) if metric == "cosine" else X
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True) if metric == "cosine" else Q
    rows = np.searchsorted(ids, I)
    expected = (np.linalg.norm(Qn[:, None] - Xn[rows], axis=2) if metric == "l2"
                else np.einsum("qd,qkd->qk", Qn, Xn[rows]))
    np.testing.assert_allclose(D, expected, rtol=1e-4, atol=1e-4)
    assert (np.diff(D, axis=1) >= -1e-6 if metric == "l2" else np.diff(D, axis=1) <= 1e-6).all()


def test_trained_flat_with_all_lists_is_exact_and_tombstones_never_returned(tmp_path, data):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=1000)
    ids = np.arange(len(X))
    col.upsert(ids[:1500], X[:1500])
    col.persist()
    assert col.is_trained
    col.upsert(ids[1500:], X[1500:])
    # delete the nearest neighbours of every query, in both the segment and the buffer
    nearest = np.unique(live_oracle(X, ids, Q, 20))
    assert col.delete(np.concatenate([nearest, [10 ** 9]])) == len(nearest)
    live = np.setdiff1d(ids, nearest)
    D, I = col.search(Q, 10, nprobe=8)
    assert not np.isin(I, nearest).any()
    np.testing.assert_array_equal(I, live_oracle(X[live], live, Q, 10))
    col.persist()
    np.testing.assert_array_equal(col.search(Q, 10, nprobe=8)[1], I)


def test_k_results_survive_heavy_deletion(tmp_path, data):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF4,Flat", train_threshold=1000)
    col.upsert(np.arange(2000), X[:2000])
    col.persist()
    dead = np.arange(0, 2000)[np.arange(2000) % 20 != 0]  # 95% deleted
    col.delete(dead)
    col.persist()
    live = np.arange(0, 2000, 20)
    D, I = col.search(Q, 10, nprobe=4)
    assert (I >= 0).all() and not np.isin(I, dead).any()
    np.testing.assert_array_equal(I, live_oracle(X[live], live, Q, 10))
    D, I = col.search(Q, 150, nprobe=4)  # more than live: all live returned, then -1
    assert sorted(I[0][I[0] >= 0]) == list(live) and (I[:, 100:] == -1).all() and np.isinf(D[:, 100:]).all()


def test_upsert_replaces_existing_point(tmp_path, data):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=1000)
    col.upsert(np.arange(1200), X[:1200], [{"v": 0}] * 1200)
    col.persist()
    target = Q[0] + 1e-3
    col.upsert([7, 8], np.stack([target, X[1300]]), [{"v": 1}, None])
    assert col.count == 1200
    D, I = col.search(Q[:1], 1, nprobe=8)
    assert I[0, 0] == 7 and D[0, 0] < 0.01
    p7, p8 = col.get([7, 8])
    np.testing.assert_array_equal(p7.vector, target.astype(np.float32))
    assert p7.payload == {"v": 1} and p8.payload is None
    col.persist()
    col.close()
    col = Collection.open(tmp_path / "c")
    assert col.count == 1200 and col.payloads([7, 8, 9]) == [{"v": 1}, None, {"v": 0}]
    # the old row of 7 is a tombstone: searching for its old vector finds another id at distance > 0
    D, I = col.search(X[7], 1, nprobe=8)
    assert I[0, 0] != 7 or D[0, 0] > 0


def test_get_keeps_request_order_and_omits_missing(tmp_path, data):
    X, _ = data
    col = Collection.create(tmp_path / "c", DIM, spec="Flat")
    col.upsert([10, 20, 30], X[:3], [{"a": 1}, None, {"b": [1, 2]}])
    col.persist()
    col.upsert([40], X[3:4], [{"c": "x"}])
    got = col.get([40, 99, 10, 30])
    assert [p.id for p in got] == [40, 10, 30]
    np.testing.assert_array_equal(got[1].vector, X[0])
    assert [p.payload for p in got] == [{"c": "x"}, {"a": 1}, {"b": [1, 2]}]
    assert col.get([20], with_vectors=False, with_payloads=False) == [Point(20, None, None)]
    assert col.payloads([99, 20, 40]) == [None, None, {"c": "x"}]


def test_search_parameters_are_checked(tmp_path, data):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=1000)
    col.upsert(np.arange(1000), X[:1000])
    with pytest.raises(InvalidParameterError, match="'k'"):
        col.search(Q, 0)
    with pytest.raises(InvalidParameterError, match="'nprobe'"):
        col.search(Q, 5, nprobe=9)
    with pytest.raises(DimensionMismatchError):
        col.search(Q[:, :4], 5)
    col.persist()
    with pytest.raises(InvalidParameterError, match="Unknown search parameter"):
        col.search(Q, 5, params={"bogus": 1})


# --- persistence -------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", buildable_specs())
def test_reopen_gives_identical_results(tmp_path, data, spec):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec=spec, train_threshold=1500)
    col.upsert(np.arange(2000), X[:2000], [{"i": i} for i in range(2000)])
    col.persist()
    assert col.is_trained
    col.upsert(np.arange(2000, 2400), X[2000:2400])
    col.delete(np.arange(0, 2400, 3))
    col.persist()
    nprobe = None if spec == "Flat" else 3
    D, I = col.search(Q, 10, nprobe=nprobe)
    E = col.search(Q, 10, exact=True)
    assert (I >= 0).all() and not (I % 3 == 0).any()
    stats = col.stats()
    col.close()
    for read_only in (False, True):
        with Collection.open(tmp_path / "c", read_only=read_only) as again:
            D2, I2 = again.search(Q, 10, nprobe=nprobe)
            np.testing.assert_array_equal(I2, I)
            np.testing.assert_array_equal(D2, D)
            np.testing.assert_array_equal(again.search(Q, 10, exact=True)[1], E[1])
            assert again.stats() == stats
            assert again.payloads([4, 3]) == [{"i": 4}, None]


def test_open_maps_codes_without_copying(tmp_path, data):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=1000)
    big = np.tile(X, (4, 1)) + np.random.default_rng(0).normal(0, 0.01, (4 * len(X), DIM)).astype(np.float32)
    col.upsert(np.arange(len(big)), big)
    col.persist()
    D, I = col.search(Q, 10, nprobe=4)
    col.close()
    before = pa.total_allocated_bytes()
    col = Collection.open(tmp_path / "c", read_only=True)
    allocated = pa.total_allocated_bytes() - before
    seg = col._state.parts[0].segment
    codes_bytes = seg.lists.codes.nbytes + seg.vectors.nbytes
    assert codes_bytes > 500_000
    assert allocated < 16_384, f"open allocated {allocated} bytes for {codes_bytes} bytes of codes"
    assert not seg.lists.codes.flags.writeable and not seg.lists.codes.flags.owndata
    assert col.stats()["bytes_mapped"] >= codes_bytes
    np.testing.assert_array_equal(col.search(Q, 10, nprobe=4)[1], I)


def test_compact_drops_tombstones_and_keeps_results(tmp_path, data):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=1000)
    for start, end in [(0, 1200), (1200, 1800), (1800, 2200), (2200, 2400)]:  # each smaller: no tier merge
        col.upsert(np.arange(start, end), X[start:end], [{"s": start}] * (end - start))
        col.persist()
    col.delete(np.arange(0, 2400, 2))
    col.upsert([1], X[5:6], [{"s": -1}])
    D, I = col.search(Q, 10, nprobe=8)
    assert col.stats()["segments"] == 4 and col.stats()["deleted"] > 0
    col.compact()
    stats = col.stats()
    assert (stats["segments"], stats["deleted"], stats["buffered"], stats["count"]) == (1, 0, 0, 1200)
    np.testing.assert_array_equal(col.search(Q, 10, nprobe=8)[1], I)
    assert col.payloads([1, 3, 1801]) == [{"s": -1}, {"s": 0}, {"s": 1800}]
    col.close()
    files = sorted(f for f in os.listdir(tmp_path / "c") if f.endswith(".arrow"))
    with Collection.open(tmp_path / "c") as again:
        np.testing.assert_array_equal(again.search(Q, 10, nprobe=8)[1], I)
        referenced = set(again.stats() and again._state.manifest["files"])
    assert referenced <= set(files)


def test_training_auto_explicit_and_retrain_rules(tmp_path, data):
    X, Q = data
    col = Collection.create(tmp_path / "a", DIM, spec="IVF8,Flat", train_threshold=1000)
    col.upsert(np.arange(999), X[:999])
    col.persist()
    assert not col.is_trained
    col.upsert([999, 1000], X[999:1001])
    col.persist(train=False)  # past the threshold, written raw: training waits for the next persist
    assert not col.is_trained and col.stats()["segments"] == 2 and col.stats()["buffered"] == 0
    col.persist()
    assert col.is_trained and col.stats()["segments"] == 1 and col.count == 1001
    col.close()
    col = Collection.create(tmp_path / "b", DIM, spec="IVF8,Flat", store_vectors=False, train_threshold=5000)
    col.upsert(np.arange(300), X[:300])
    col.train(sample=X[300:2000])  # explicit, with an outside sample, below the threshold
    assert col.is_trained and col.count == 300 and col.get([0])[0].vector is None
    np.testing.assert_array_equal(col.search(Q, 5, nprobe=8)[1], live_oracle(X[:300], np.arange(300), Q, 5))
    with pytest.raises(InvalidParameterError, match="store_vectors"):
        col.train()
    with pytest.raises(InvalidParameterError, match="store_vectors"):
        col.search(Q, 5, exact=True)
    col.close()
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat")
    with pytest.raises(InvalidParameterError, match="empty"):
        col.train()
    col.train(sample=X[:1000])  # a model before any point: no empty segment is written
    assert col.is_trained and col.stats()["segments"] == 0
    col.upsert(np.arange(10), X[:10])
    col.persist()
    np.testing.assert_array_equal(col.search(X[:3], 1, nprobe=8)[1][:, 0], [0, 1, 2])


def test_snapshot_is_a_consistent_openable_copy(tmp_path, data):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=1000)
    col.upsert(np.arange(1500), X[:1500], [{"i": i} for i in range(1500)])
    col.persist()
    col.delete([1, 2])
    col.upsert([3000], X[2000:2001])  # unpersisted: snapshot persists first
    D, I = col.search(Q, 10, nprobe=8)
    snap = col.snapshot(tmp_path / "snap")
    assert snap["path"] == str(tmp_path / "snap")
    assert all(manifest.sha256_file(str(tmp_path / "snap" / n)) == h for n, h in snap["files"].items())
    with pytest.raises(CollectionExistsError):
        col.snapshot(tmp_path / "snap")
    with Collection.open(tmp_path / "snap") as copy:
        np.testing.assert_array_equal(copy.search(Q, 10, nprobe=8)[1], I)
        assert copy.count == 1499 and copy.verify() == []


def test_many_small_upserts_fold_into_few_buffer_chunks(tmp_path, data):
    """A stream of small upserts (and re-upserts, deletes) keeps O(log n) buffer chunks, each
    brute-forced once per search, and every live point where it was put."""
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=1000)
    col.upsert(np.arange(1200), X[:1200])
    col.persist()
    for i in range(64):
        col.upsert(np.arange(2000 + 10 * i, 2010 + 10 * i), X[1200 + 10 * i:1210 + 10 * i], [{"i": i}] * 10)
    col.upsert([2000, 5], np.stack([Q[0], Q[1]]))  # replaces a buffered point and a persisted one
    col.delete([2011])
    chunks = [p for p in col._state.parts if p.segment.name is None]
    assert len(chunks) <= 8 and sum(p.live for p in chunks) == 640
    assert col.count == 1200 + 640 - 1
    D, I = col.search(Q[:2], 1, nprobe=8)
    assert I[:, 0].tolist() == [2000, 5] and D.max() < 1e-3
    assert col.get([2011]) == [] and col.payloads([2012, 2639, 2000]) == [{"i": 1}, {"i": 63}, None]
    np.testing.assert_array_equal(col.get([2639])[0].vector, X[1839])
    col.persist()
    col.close()
    with Collection.open(tmp_path / "c") as col:
        assert col.count == 1839 and col.payloads([2012, 2639]) == [{"i": 1}, {"i": 63}]


def test_large_upserts_settle_as_buffer_chunks_of_their_own(tmp_path, data, monkeypatch):
    """A buffer chunk of SETTLED_FLOATS is never merged again before persist (merging would only
    copy it), smaller chunks still fold, one whose deletes leave it small folds again, and no
    replaced, deleted or persisted point is lost or revived."""
    import annvq.collection

    monkeypatch.setattr(annvq.collection, "SETTLED_FLOATS", 64 * DIM)  # 64 rows settle
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="Flat")
    for i in range(4):
        col.upsert(np.arange(100 * i, 100 * i + 100), X[100 * i:100 * i + 100])

    def chunks():
        return [p.segment.rows for p in col._state.parts if p.segment.name is None]

    assert chunks() == [100, 100, 100, 100]
    for i in range(4):  # 10-row chunks fold as a binary counter, never into the settled ones
        col.upsert(np.arange(1000 + 10 * i, 1010 + 10 * i), X[400 + 10 * i:410 + 10 * i])
    assert chunks() == [100, 100, 100, 100, 40]
    col.upsert([5, 1000], np.stack([Q[0], Q[1]]))  # replaces a point of a settled chunk and a folded one
    col.delete(np.arange(300, 340))  # the last settled chunk keeps 60 live rows: it folds again
    assert chunks() == [100, 100, 100, 100, 40, 2]
    col.upsert(np.arange(2000, 2060), X[440:500])
    assert chunks() == [100, 100, 100, 60 + 39 + 2 + 60] and col.count == 400 + 40 - 40 + 60
    D, I = col.search(Q[:2], 1)
    assert I[:, 0].tolist() == [5, 1000] and D.max() < 1e-3
    assert col.get(np.arange(300, 340)) == []
    np.testing.assert_array_equal(col.get([399])[0].vector, X[399])
    col.persist()
    col.close()
    with Collection.open(tmp_path / "c") as col:
        assert col.count == 460 and col.get([300]) == []
        np.testing.assert_array_equal(col.get([5])[0].vector, Q[0])
        np.testing.assert_array_equal(col.get([2059])[0].vector, X[499])


def test_settled_buffer_chunks_are_bounded(tmp_path, data, monkeypatch):
    """From BUFFER_CHUNKS chunks on, settled chunks fold too, as a binary counter of that many."""
    import annvq.collection

    monkeypatch.setattr(annvq.collection, "SETTLED_FLOATS", 64 * DIM)
    monkeypatch.setattr(annvq.collection, "BUFFER_CHUNKS", 4)
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="Flat")
    sizes = []
    for i in range(10):
        col.upsert(np.arange(100 * i, 100 * i + 100), X[100 * i:100 * i + 100])
        sizes.append([p.segment.rows for p in col._state.parts if p.segment.name is None])
    assert sizes[3] == [100] * 4 and sizes[4] == [500] and sizes[7] == [500, 100, 100, 100]
    assert sizes[8] == [500, 400] and sizes[9] == [500, 400, 100] and col.count == 1000
    D, I = col.search(X[:1000:97], 1)
    assert I[:, 0].tolist() == list(range(0, 1000, 97)) and D.max() < 1e-3


def test_persists_merge_segments_as_a_binary_counter(tmp_path, data):
    """Each persist's segment takes in the newest segments no larger than it: seven persists of
    100 leave three segments (400 + 200 + 100, less two deleted), eight leave one, and no point is
    lost or revived."""
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=100)
    col.train(X[:500])
    sizes = []
    for i in range(8):
        col.upsert(np.arange(100 * i, 100 * i + 100), X[100 * i:100 * i + 100], [{"i": i}] * 100)
        if i == 3:
            col.delete([0, 150])  # tombstones of a segment that a later persist merges away
        col.persist()
        sizes.append([p.live for p in col._state.parts])
    assert sizes[6] == [398, 200, 100] and sizes[7] == [798]
    assert col.stats()["deleted"] == 0 and col.count == 798
    exact = exact_knn(np.delete(X[:800], [0, 150], axis=0), Q, 5)
    ids = np.delete(np.arange(800), [0, 150])
    np.testing.assert_array_equal(col.search(Q, 5, exact=True)[1], ids[exact])
    col.close()
    with Collection.open(tmp_path / "c") as col:
        assert col.count == 798 and col.stats()["segments"] == 1 and col.payloads([799]) == [{"i": 7}]


@pytest.mark.parametrize("spec, metric", [("IVF8,SAQ4", "l2"), ("IVF8,PQ8x4fs", "l2"), ("IVF8,SAQ4", "cosine")])
def test_segments_share_the_queries_rotation_and_probes(tmp_path, data, spec, metric, monkeypatch):
    """A search over several segments validates, normalises (cosine), probes and, for SAQ,
    rotates each query once, and returns what searching every segment afresh returns."""
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, metric=metric, spec=spec, train_threshold=1000)
    for start, end in [(0, 1200), (1200, 1800), (1800, 2100)]:  # each smaller: three segments
        col.upsert(np.arange(start, end), X[start:end])
        col.persist()
    assert col.stats()["segments"] == 3
    col.warmup()
    made = []
    get = QueryCache.get
    monkeypatch.setattr(QueryCache, "get", lambda self, key, make: get(
        self, key, lambda: made.append(key) or make()))
    shared = [col.search(q, 10, nprobe=4) for q in (Q[:1], Q[:20])]
    # once per search, not per segment: PQ probes and rotates; SAQ rotates and probes, in its own
    # basis but for a batch of inner products (through the plan's probe). A single query does
    # both in its first segment's scan call, which leaves them in the plan for the others (no make).
    saq, lists = ["saq", ("saq lists", (4,))], ("lists", (4,))
    per_search = ([[lists, "pq.rotated"]] * 2 if "PQ" in spec else [[], saq] if metric == "l2"
                  else [[], [*saq, lists]])
    assert made == [key for keys in per_search for key in keys]
    monkeypatch.setattr(QueryCache, "get", lambda self, key, make: make())
    for q, (D, I) in zip((Q[:1], Q[:20]), shared):
        D2, I2 = col.search(q, 10, nprobe=4)
        np.testing.assert_array_equal(I, I2)
        np.testing.assert_array_equal(D, D2)


def test_stats_counts(tmp_path, data):
    X, _ = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=2000)
    col.upsert(np.arange(500), X[:500])
    col.persist()
    col.upsert(np.arange(500, 600), X[500:600])
    col.delete([0, 1, 550])
    s = col.stats()
    assert (s["count"], s["deleted"], s["segments"], s["buffered"], s["trained"], s["nlist"]) == (597, 3, 1, 99, False, 8)
    assert s["bytes_on_disk"] == os.path.getsize(tmp_path / "c" / "seg-000001.arrow")
    assert s["format_version"] == arrow.FORMAT_VERSION and (s["dim"], s["metric"]) == (DIM, "l2")


# --- faults during persist ---------------------------------------------------------------------
@pytest.mark.parametrize("where", ["segment", "manifest", "current"])
def test_failed_persist_keeps_previous_state(tmp_path, data, monkeypatch, where):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=1000)
    col.upsert(np.arange(1200), X[:1200])
    col.persist()
    committed = col.search(Q, 10, nprobe=8)
    col.upsert(np.arange(1200, 1500), X[1200:1500])
    col.delete(np.arange(100))
    pending = col.search(Q, 10, nprobe=8)
    real_write = manifest.durable_write

    def failing(directory, name, write):
        hit = {"segment": name.startswith("seg-"), "manifest": name.startswith("MANIFEST"),
               "current": name == "CURRENT"}[where]
        if hit:
            code = errno.ENOSPC if where != "current" else errno.EACCES
            return real_write(directory, name, lambda p: (_ for _ in ()).throw(OSError(code, os.strerror(code))))
        return real_write(directory, name, write)

    monkeypatch.setattr(manifest, "durable_write", failing)
    with pytest.raises(StorageError, match="last committed state is intact"):
        col.persist()
    # nothing in memory was lost: the pending changes are still searchable, and a retry works
    np.testing.assert_array_equal(col.search(Q, 10, nprobe=8)[1], pending[1])
    assert not any(".tmp-" in f for f in os.listdir(tmp_path / "c"))
    with Collection.open(tmp_path / "c", read_only=True) as old:
        np.testing.assert_array_equal(old.search(Q, 10, nprobe=8)[1], committed[1])
        assert old.count == 1200
    monkeypatch.undo()
    col.persist()
    col.close()
    with Collection.open(tmp_path / "c") as new:
        np.testing.assert_array_equal(new.search(Q, 10, nprobe=8)[1], pending[1])
        assert new.count == 1400


# --- concurrency -------------------------------------------------------------------------------
def test_concurrent_readers_see_no_torn_state(tmp_path):
    """Every write replaces all N points with generation g (vector [g, i, 0...]); a search from
    the origin must see N distinct ids from one generation, whatever the writer is doing."""
    n, dim = 64, 8
    col = Collection.create(tmp_path / "c", dim, spec="IVF2,Flat", train_threshold=64)

    def generation(g):
        V = np.zeros((n, dim), np.float32)
        V[:, 0], V[:, 1] = g, np.arange(n)
        return V

    col.upsert(np.arange(n), generation(1))
    col.persist()
    stop, errors = threading.Event(), []

    def reader():
        q = np.zeros((1, dim), np.float32)
        while not stop.is_set():
            try:
                D, I = col.search(q, n, nprobe=2)
                assert sorted(I[0]) == list(range(n)), f"ids {sorted(I[0])}"
                g = np.sqrt(np.maximum(D[0] ** 2 - I[0].astype(np.float64) ** 2, 0))
                assert np.ptp(g) < 1e-2, f"mixed generations {np.unique(np.round(g, 2))}"
                assert col.count == n
            except AssertionError as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for g in range(2, 40):
        col.upsert(np.arange(n), generation(g))
        if g % 4 == 0:
            col.persist()
        if g % 10 == 0:
            col.compact()
        if g % 7 == 0:  # a reader process opening mid-stream sees a committed generation
            with Collection.open(tmp_path / "c", read_only=True) as other:
                assert other.count == n
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_old_versions_are_collected_while_open_readers_keep_working(tmp_path, data):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="IVF8,Flat", train_threshold=1000, keep_versions=1)
    col.upsert(np.arange(1200), X[:1200])
    col.persist()
    reader = Collection.open(tmp_path / "c", read_only=True)
    D, I = reader.search(Q, 10, nprobe=8)
    for start in range(1200, 2400, 300):
        col.upsert(np.arange(start, start + 300), X[start:start + 300])
        col.delete(np.arange(start - 1200, start - 1100))
        col.persist()
    col.compact()
    files = sorted(os.listdir(tmp_path / "c"))
    referenced = sorted(col._state.manifest["files"])
    assert files == sorted(["CURRENT", "LOCK", manifest.read_current(str(tmp_path / "c")), *referenced])
    # the reader's files are gone from the directory but stay mapped: same answers as before
    np.testing.assert_array_equal(reader.search(Q, 10, nprobe=8)[1], I)
    assert reader.count == 1200


def test_buffer_does_not_alias_the_callers_arrays(tmp_path, data):
    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="Flat")
    V, ids = X[:50].copy(), np.arange(50)
    col.upsert(ids, V)
    V[:] = 0
    ids[:] = 7
    np.testing.assert_array_equal(col.get([3])[0].vector, X[3])
    np.testing.assert_array_equal(col.search(X[:5], 1)[1][:, 0], np.arange(5))


def test_persist_hitting_a_real_write_error_keeps_previous_state(tmp_path, data):
    """The kernel refuses the write (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC) inside
    pyarrow's own writer; persist raises StorageError and the last commit still opens."""
    import resource
    import signal

    X, Q = data
    col = Collection.create(tmp_path / "c", DIM, spec="Flat")
    col.upsert(np.arange(100), X[:100])
    col.persist()
    col.upsert(np.arange(100, 2400), X[100:])
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, limit[1]))
    try:
        with pytest.raises(StorageError, match="File too large"):
            col.persist()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert col.count == 2400
    with Collection.open(tmp_path / "c", read_only=True) as old:
        assert old.count == 100 and old.verify() == []
    col.persist()
    assert col.stats()["buffered"] == 0 and col.count == 2400


def test_warmup_builds_every_segments_search_layout(tmp_path, data):
    """After warmup the SAQ FastScan blocks of every persisted segment exist, so no query builds them."""
    X, _ = data
    with Collection.create(tmp_path / "c", DIM, spec="IVF8,SAQ4", train_threshold=1000) as col:
        col.upsert(np.arange(1200), X[:1200])
        col.persist()
        col.upsert(np.arange(1200, 1800), X[1200:1800])  # smaller than the first: a segment of its own
        col.persist()
    with Collection.open(tmp_path / "c", read_only=True) as col:
        state = col._check_open()
        segments = [p.segment.lists for p in state.persisted if p.segment.lists is not None]
        assert len(segments) == 2
        codec = state.model.codec
        built = lambda: {k[1] for k in codec._cache if k[0] == "packed"}
        assert not built()
        col.warmup()
        assert built() == {id(lists) for lists in segments}
