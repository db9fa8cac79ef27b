"""Filtered search on a Collection against a plain-Python oracle: the live points kept as
{id: (vector, payload dict)}, filters evaluated on those dicts by an independent evaluator, and
neighbours found by float64 brute force over the points that match. Covers the buffer, several
persisted segments, tombstones (deleted and overwritten points), the automatic nprobe raising,
the search strategies, payload indexes declared and dropped, persistence, damage to the index
files, count_matching, scroll, and payloads refused at upsert. Small data (dim 16, < 2000 points)."""

from __future__ import annotations

import functools
import json
import operator
import os
import re

import numpy as np
import pytest

from annvq import Collection
from annvq.errors import CorruptFileError, InvalidParameterError
from annvq.filters import InvalidFilterError
from naive import clustered

DIM = 16
NLIST = 16
THRESHOLD = 800  # trains at the first persist of the first batch
INDEXES = {"label": "integer", "color": "keyword", "price": "float", "sold": "bool"}
COLORS = ("red", "green", "blue")
# The sizes of the batches of `build`: three persisted segments (the first trains the model) and
# the buffer. Each batch is smaller than the one before, so persist does not merge them.
SEGMENTS, BUFFERED = (1000, 300, 100), 150
NEW_LABEL = 42  # the label of every overwritten point's new payload (old labels are 0..9)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tests check answers, not parallel speed: one thread for numba, faiss's OpenMP and
    BLAS while they run (restored after). On a busy machine the OpenMP teams of faiss and of
    numba spin-wait for each other, and a search of a dozen queries over 1,600 points costs
    ~150 ms instead of ~1 ms, which made this file take a minute instead of a few seconds."""
    import faiss
    import numba
    import threadpoolctl

    before = numba.get_num_threads(), faiss.omp_get_max_threads()
    with threadpoolctl.threadpool_limits(1):
        numba.set_num_threads(1)
        faiss.omp_set_num_threads(1)
        try:
            yield
        finally:
            numba.set_num_threads(before[0])
            faiss.omp_set_num_threads(before[1])


def pid(i):
    """The id of the i-th point: sparse and offset, so rows and ids never coincide."""
    return 3 * i + 1000


_RNG = np.random.default_rng(5)
_LABELS, _PRICES, _COLORS, _SOLD = (_RNG.integers(0, 10, 4000), _RNG.integers(0, 1000, 4000),
                                    _RNG.integers(0, 3, 4000), _RNG.integers(0, 2, 4000))


def payload(i: int) -> dict:
    """The payload of the i-th point: some fields absent or null, some prices written as JSON
    integers (a float index takes them), and an unindexed field of any type."""
    i = int(i)
    p = {"label": int(_LABELS[i]), "color": COLORS[_COLORS[i]], "price": float(_PRICES[i]) / 10,
         "sold": bool(_SOLD[i]), "note": [i, "free text"]}
    if i % 13 == 0:
        del p["label"]
    if i % 11 == 0:
        p["color"] = None
    if i % 17 == 0:
        del p["color"]
    if i % 5 == 0:
        p["price"] = int(_PRICES[i]) // 10
    if i % 19 == 0:
        p["sold"] = None
    return p


def new_payload(i: int) -> dict:
    i = int(i)
    return {"label": NEW_LABEL, "color": "violet", "price": 500.0 + i, "sold": False}


# --- the oracle --------------------------------------------------------------------------------
def predicate(flt: dict | None):
    """The filter language (annvq.filters' docstring) as a plain function of (id, payload dict),
    written from the docstring, not from the library's code."""
    if not flt:
        return lambda point_id, p: True
    as_list = lambda x: [x] if isinstance(x, dict) else list(x or [])
    bounds = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}

    def cond(c: dict):
        if set(c) & {"must", "should", "must_not"}:
            return predicate(c)
        if "has_id" in c:
            ids = frozenset(c["has_id"])
            return lambda point_id, p: point_id in ids
        if "is_empty" in c:
            key = c["is_empty"]["key"]
            return lambda point_id, p: p.get(key) is None
        key = c["key"]
        if "match" in c:
            (how, want), = c["match"].items()
            test = {"value": lambda v: v == want, "any": lambda v: v in want,
                    "except": lambda v: v not in want}[how]
        else:
            ops = [(bounds[b], x) for b, x in c["range"].items()]
            test = lambda v: all(op(v, x) for op, x in ops)
        # a point without a value fails every condition on the field but is_empty
        return lambda point_id, p: (v := p.get(key)) is not None and test(v)

    must, should, must_not = ([cond(c) for c in as_list(flt.get(clause))]
                              for clause in ("must", "should", "must_not"))
    return lambda i, p: (all(c(i, p) for c in must) and (not should or any(c(i, p) for c in should))
                         and not any(c(i, p) for c in must_not))


class Mirror:
    """A collection and the same live points in plain Python; every write goes to both."""

    def __init__(self, col: Collection):
        self.col = col
        self.points: dict[int, tuple[np.ndarray, dict | None]] = {}
        self._matching: dict[str, np.ndarray] = {}  # filter's JSON -> matching ids, until a write

    def upsert(self, ids, X, payloads):
        self.col.upsert(ids, X, payloads)
        self._matching.clear()
        for i, x, p in zip(np.asarray(ids).tolist(), X, payloads):
            self.points[i] = (np.asarray(x, np.float64), p)

    def delete(self, ids):
        self.col.delete(ids)
        self._matching.clear()
        for i in np.asarray(ids).tolist():
            self.points.pop(i, None)

    def matching(self, flt) -> np.ndarray:
        """The ids of the live points passing ``flt``, ascending."""
        key = json.dumps(flt, sort_keys=True)
        if key not in self._matching:
            test = predicate(flt)
            self._matching[key] = np.array(sorted(i for i, (_, p) in self.points.items() if test(i, p or {})),
                                           np.int64)
        return self._matching[key]

    def knn(self, Q: np.ndarray, k: int, flt) -> tuple[np.ndarray, np.ndarray]:
        """(ids, distances) (nq, min(k, matches)) of the exact filtered neighbours, in the
        collection's reported distances (l2: Euclidean, ip/cosine: the inner product)."""
        ids = self.matching(flt)
        if not len(ids):
            return np.zeros((len(Q), 0), np.int64), np.zeros((len(Q), 0))
        V, Q = np.stack([self.points[i][0] for i in ids.tolist()]), Q.astype(np.float64)
        if self.col.metric == "cosine":
            V, Q = (A / np.linalg.norm(A, axis=1, keepdims=True) for A in (V, Q))
        if self.col.metric == "l2":
            dist = np.sqrt(((Q[:, None] - V[None]) ** 2).sum(-1))
            order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        else:
            dist = Q @ V.T
            order = np.argsort(-dist, axis=1, kind="stable")[:, :k]
        return ids[order], np.take_along_axis(dist, order, 1)


def assert_only_matching(mirror: Mirror, hits, flt):
    """Every hit is a live point that passes the filter, no id twice in a row; padding at the end."""
    allowed = set(mirror.matching(flt).tolist())
    for row, found in zip(hits.ids, hits.found):
        assert (row[:found] >= 0).all() and (row[found:] == -1).all()
        assert set(row[:found].tolist()) <= allowed
        assert len(set(row[:found].tolist())) == found


def assert_oracle(mirror: Mirror, Q, k, flt, **search):
    """The filtered search equals the oracle: same ids, in order, same distances, padded."""
    hits = mirror.col.query(Q, k, filter=flt, **search)
    truth, dist = mirror.knn(Q, k, flt)
    n = truth.shape[1]
    assert (hits.found == n).all(), (flt, hits.found, n)
    np.testing.assert_array_equal(hits.ids[:, :n], truth, err_msg=json.dumps(flt))
    assert (hits.ids[:, n:] == -1).all()
    np.testing.assert_allclose(hits.distances[:, :n], dist, rtol=1e-4, atol=1e-4)
    assert_only_matching(mirror, hits, flt)
    # the hits' payloads and vectors are those of the points found
    assert hits.payloads(0) == [mirror.points[i][1] for i in truth[0].tolist()]
    vectors = hits.vectors(0)
    stored = mirror.col.store_vectors or not mirror.col.is_trained
    if stored and mirror.col.metric != "cosine" and all(v is not None for v in vectors):
        for i, v in zip(truth[0].tolist(), vectors):
            np.testing.assert_allclose(v, mirror.points[i][0], rtol=1e-6)
    return hits


# --- filters -----------------------------------------------------------------------------------
FILTERS = {
    "label": {"must": [{"key": "label", "match": {"value": 3}}]},
    "price range": {"must": [{"key": "price", "range": {"gte": 20, "lt": 45.5}}]},
    "integer range, float bound": {"must": {"key": "label", "range": {"gt": 1.5, "lte": 4}}},
    "mixed": {"must": [{"key": "label", "match": {"any": [1, 2, 3, NEW_LABEL]}}],
              "should": [{"key": "color", "match": {"value": "red"}}, {"key": "sold", "match": {"value": True}}],
              "must_not": [{"has_id": [pid(i) for i in range(0, 1700, 4)]}]},
    "except": {"must": [{"key": "color", "match": {"except": ["red", "violet"]}}]},
    "is_empty": {"must": [{"is_empty": {"key": "label"}}]},
    "must_not keeps absent": {"must_not": [{"key": "label", "match": {"value": 0}},
                                           {"key": "sold", "match": {"value": False}}]},
    "nested": {"should": [{"must": [{"key": "color", "match": {"value": "blue"}},
                                    {"key": "price", "range": {"lt": 30}}]},
                          {"has_id": [pid(i) for i in (1, 2, 3, 1001, 1302, 1450, 1460)]}]},
    "overwritten": {"must": [{"key": "label", "match": {"value": NEW_LABEL}}]},
    "few": {"must": [{"has_id": [pid(i) for i in (7, 8, 1010, 1305, 1420)] + [9]}]},
    "none": {"must": [{"key": "label", "match": {"value": 999}}]},
    "except nothing, any of nothing": {"must": [{"key": "color", "match": {"except": []}}],
                                       "should": [{"key": "label", "match": {"any": []}},
                                                  {"key": "sold", "match": {"any": [True]}}]},
}


def build(path, *, metric="l2", spec="IVF16,SAQ4", store_vectors=True):
    """A trained collection of three persisted segments and a buffer, with deleted and
    overwritten points in each; returns (mirror, Q, changes) where changes holds the ids
    deleted and {id: (old vector, old payload)} of those overwritten."""
    n = sum(SEGMENTS) + BUFFERED
    X = clustered(n + 200, DIM, seed=21)
    col = Collection.create(path, DIM, metric=metric, spec=spec, store_vectors=store_vectors,
                            train_threshold=THRESHOLD, payload_indexes=INDEXES)
    m = Mirror(col)
    start = 0
    for size in SEGMENTS:
        idx = np.arange(start, start + size)
        m.upsert(pid(idx), X[idx], [payload(i) for i in idx])
        m.col.persist()
        start += size
    assert col.is_trained and col.stats()["segments"] == 3
    idx = np.arange(start, n)  # the buffer
    m.upsert(pid(idx), X[idx], [payload(i) for i in idx])
    # overwrite points of every segment and of the buffer; delete others (never the same)
    over = np.concatenate([np.arange(1, 1000, 25), np.arange(1003, 1300, 20), np.arange(1300, 1400, 17),
                           np.arange(1405, n, 30)])
    dead = np.setdiff1d(np.arange(0, n, 9), over)
    old = {int(pid(i)): m.points[int(pid(i))] for i in over}
    m.upsert(pid(over), X[n:n + len(over)], [new_payload(i) for i in over])
    m.delete(pid(dead))
    stats = col.stats()
    assert stats["segments"] == 3 and stats["buffered"] > 0 and stats["deleted"] > 0
    assert col.count == len(m.points)
    return m, clustered(12, DIM, seed=22), {"dead": pid(dead), "old": old}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``built(metric, spec, store_vectors)``: `build`'s (mirror, Q, changes), made once per
    module for the tests that only read."""
    cache = {}

    def get(metric="l2", spec="IVF16,SAQ4", store_vectors=True):
        key = (metric, spec, store_vectors)
        if key not in cache:
            cache[key] = build(tmp_path_factory.mktemp("built") / "c", metric=metric, spec=spec,
                               store_vectors=store_vectors)
        return cache[key]

    yield get
    for m, _, _ in cache.values():
        m.col.close()


# --- 1. exact filtered results equal the oracle ------------------------------------------------
EXACT_WAYS = {  # (spec, store_vectors, search options) that must give the exact answer
    "Flat all lists": ("IVF16,Flat", True, {"nprobe": NLIST}),
    "Flat all lists, codes only": ("IVF16,Flat", False, {"nprobe": NLIST}),
    "SAQ exact=True": ("IVF16,SAQ4", True, {"exact": True}),
}


@pytest.mark.parametrize("way", list(EXACT_WAYS))
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_exact_filtered_search_equals_oracle(built, metric, way):
    spec, store_vectors, search = EXACT_WAYS[way]
    m, Q, _ = built(metric, spec, store_vectors)
    for name, flt in FILTERS.items():
        for k in (1, 10):
            assert_oracle(m, Q, k, flt, **search)
    # no filter, None or {}: every live point
    for flt in (None, {}):
        assert_oracle(m, Q, 10, flt, **search)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_approximate_filtered_search_returns_only_matching_live_points(built, metric):
    m, Q, _ = built(metric)
    for flt in FILTERS.values():
        for nprobe in (1, 3):
            hits = m.col.query(Q, 10, nprobe=nprobe, filter=flt)
            assert_only_matching(m, hits, flt)
            assert (hits.found == min(10, len(m.matching(flt)))).all()
            order = hits.distances[:, :hits.found.min()]
            assert (np.diff(order, axis=1) >= -1e-5 if metric == "l2" else np.diff(order, axis=1) <= 1e-5).all()


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_sparse_filter_scores_the_allowed_rows_of_the_probed_lists_exactly(built, metric):
    """One query, a filter allowing ~10% of each segment's rows (more than its nearest list
    holds): the segments run ``ivf-raw``, whose distances are exact, as the buffer's are."""
    m, Q, _ = built(metric)
    flt = FILTERS["label"]
    for q in Q[:4]:
        hits = m.col.query(q[None], 3, nprobe=1, filter=flt)  # k=3: nprobe stays 1
        assert "ivf-raw" in hits.strategy.split("+"), hits.strategy
        assert_only_matching(m, hits, flt)
        assert hits.found[0] == 3
        V, x = np.stack([m.points[i][0] for i in hits.ids[0].tolist()]), q.astype(np.float64)
        if metric == "cosine":
            V, x = V / np.linalg.norm(V, axis=1, keepdims=True), x / np.linalg.norm(x)
        exact = np.sqrt(((V - x) ** 2).sum(1)) if metric == "l2" else V @ x
        np.testing.assert_allclose(hits.distances[0], exact, rtol=1e-4, atol=1e-4)


# --- 2. buffer, segments and tombstones through every stage ------------------------------------
def test_filters_across_buffer_segments_and_tombstones_at_every_stage(tmp_path):
    m, Q, changes = build(tmp_path / "c", spec="IVF16,Flat")
    over = sorted(changes["old"])
    dead = changes["dead"].tolist()

    def check(col):
        m.col = col
        for flt in FILTERS.values():
            assert_oracle(m, Q, 10, flt, nprobe=NLIST)
            assert_oracle(m, Q, 10, flt, exact=True)
        # an overwritten point passes on its new payload only, and sits at its new vector
        assert col.count_matching(FILTERS["overwritten"]) == len(over)
        assert col.count_matching({"must": [{"has_id": over}, {"key": "label", "range": {"lt": 10}}]}) == 0
        for p in over[::7]:
            old_vector, old_payload = m.points_old[p]
            both = {"must": [{"has_id": [p]}]}
            hits = col.query(old_vector, 1, filter=both, nprobe=NLIST)
            assert hits.ids[0, 0] == p
            np.testing.assert_allclose(hits.distances[0, 0], np.linalg.norm(old_vector - m.points[p][0]),
                                       rtol=1e-4)
            if old_payload.get("label") is not None:
                stale = {"must": [{"has_id": [p]}, {"key": "label", "match": {"value": old_payload["label"]}}]}
                assert col.query(old_vector, 3, filter=stale, nprobe=NLIST).found[0] == 0
                assert col.count_matching(stale) == 0
        # a deleted point never matches, even by id
        gone = {"must": [{"has_id": dead}]}
        assert col.count_matching(gone) == 0
        hits = col.query(Q[:2], 5, filter=gone, nprobe=NLIST)
        assert (hits.found == 0).all() and (hits.ids == -1).all()
        # a filter on ids in every part finds them all, buffer and segments alike
        spread = [p for p in (pid(2), pid(1002), pid(1302), pid(1402), pid(1547), *over[-3:]) if p in m.points]
        hits = col.query(Q[:3], 20, filter={"must": [{"has_id": spread}]}, nprobe=2)
        assert (hits.found == len(spread)).all()
        assert all(sorted(row[row >= 0].tolist()) == sorted(spread) for row in hits.ids)

    m.points_old = changes["old"]
    check(m.col)  # buffer + three segments + in-memory tombstones
    m.col.persist()  # buffer -> segment, tombstones -> file
    assert m.col.stats()["buffered"] == 0
    check(m.col)
    m.col.close()
    check(Collection.open(tmp_path / "c", read_only=True))
    m.col.close()
    col = Collection.open(tmp_path / "c")
    col.compact()
    assert col.stats()["segments"] == 1 and col.stats()["deleted"] == 0
    check(col)
    assert col.verify() == []
    col.close()


# --- 3. k results whenever k match: nprobe raised as needed ------------------------------------
def one_segment(path, *, spec="IVF16,SAQ4", store_vectors=True, n=1600):
    """A trained collection: one persisted segment of n points, nothing buffered."""
    X = clustered(n, DIM, seed=31)
    col = Collection.create(path, DIM, spec=spec, store_vectors=store_vectors, train_threshold=THRESHOLD,
                            payload_indexes=INDEXES)
    m = Mirror(col)
    m.upsert(pid(np.arange(n)), X, [payload(i) for i in range(n)])
    col.persist()
    assert col.is_trained and col.stats()["segments"] == 1 and col.stats()["buffered"] == 0
    return m, X


@pytest.mark.parametrize("spec", ["IVF16,SAQ4", "IVF16,Flat"])
def test_k_results_whenever_k_match_by_raising_nprobe(tmp_path, spec):
    m, X = one_segment(tmp_path / "c", spec=spec)
    Q = clustered(20, DIM, seed=32)
    plain = m.col.query(Q, 30, nprobe=1)
    assert (plain.nprobe == 1).all() and plain.strategy == "ivf"
    # about one point in ten matches: one list of ~100 rows holds ~10, so k=30 needs more lists
    flt = FILTERS["label"]
    n_match = len(m.matching(flt))
    assert 1600 / NLIST < n_match < 30 * NLIST  # broad enough for IVF at nprobe 1
    hits = m.col.query(Q, 30, nprobe=1, filter=flt)
    assert (hits.found == 30).all()
    assert_only_matching(m, hits, flt)
    # nprobe starts where ~30 matches are expected (about 3 lists), doubling for queries short of k
    assert (hits.nprobe >= 3).all() and hits.nprobe.max() <= NLIST
    # (with ~160 matches in 1600 rows, three lists would read more rows than match: flat)
    assert hits.strategy == "flat"
    # the matching points lie only in lists far from the query (none among its four nearest,
    # read from the segment's own lists and centroids, whatever k-means made of the data):
    # still k of them come back, by IVF
    model, seg = m.col._state.model, m.col._state.parts[0].segment
    list_of = dict(zip(seg.lists.ids.tolist(), np.repeat(np.arange(NLIST), np.diff(seg.lists.offsets)).tolist()))
    near = np.argsort(((model.centroids_ - Q[0]) ** 2).sum(1))
    outside = [i for i in pid(np.arange(len(X))).tolist() if list_of[i] not in near[:4]]
    far = {"must": [{"has_id": outside}]}
    assert len(outside) > 1600 * 4 / NLIST  # too many to be scanned exhaustively at nprobe 4
    hits = m.col.query(Q[:1], 10, nprobe=1, filter=far)
    assert hits.found[0] == 10 and 1 <= hits.nprobe[0] <= NLIST and hits.strategy.startswith("ivf")
    assert_only_matching(m, hits, far)
    # 150 points spread over every list, k=150: one list holds a few, so nprobe starts at every
    # list, which would read more rows than match: the matching rows are scanned exhaustively
    # (over raw vectors: the exact answer, every one of them in order)
    spread = {"must": [{"has_id": pid(np.arange(0, 1500, 10)).tolist()}]}
    hits = m.col.query(Q[:3], 150, nprobe=1, filter=spread)
    assert (hits.found == 150).all() and (hits.nprobe == NLIST).all() and hits.strategy == "flat"
    np.testing.assert_array_equal(hits.ids, m.knn(Q[:3], 150, spread)[0])
    # fewer than k match: all of them (nprobe raised until every matching row was read), then padding
    hits = m.col.query(Q[:5], n_match + 25, nprobe=1, filter=flt)
    assert (hits.found == n_match).all() and (hits.nprobe > 1).all()
    for row in hits.ids:
        assert sorted(row[:n_match].tolist()) == m.matching(flt).tolist() and (row[n_match:] == -1).all()
    # nothing matches: found 0, ids -1
    hits = m.col.query(Q[:4], 5, nprobe=1, filter=FILTERS["none"])
    assert (hits.found == 0).all() and (hits.ids == -1).all() and hits.strategy == "none"
    assert np.isinf(hits.distances).all()
    assert m.col.count_matching(FILTERS["none"]) == 0


def test_nprobe_raising_across_segments_buffer_and_tombstones(built):
    m, Q, _ = built()
    for name in ("label", "mixed", "overwritten", "few", "is_empty"):
        flt = FILTERS[name]
        want = min(25, len(m.matching(flt)))
        hits = m.col.query(Q, 25, nprobe=1, filter=flt)
        assert (hits.found == want).all(), name
        assert_only_matching(m, hits, flt)
        assert ((hits.nprobe >= 1) & (hits.nprobe <= NLIST)).all()
    hits = m.col.query(Q, 3, nprobe=1, filter=FILTERS["none"])
    assert (hits.found == 0).all() and (hits.ids == -1).all()


# --- 4. strategy -------------------------------------------------------------------------------
@pytest.mark.parametrize("store_vectors", [True, False], ids=["raw", "codes"])
def test_strategy_reported(tmp_path, store_vectors):
    m, X = one_segment(tmp_path / "c", store_vectors=store_vectors)
    Q = X[:4] + 0.01
    selective = {"must": [{"has_id": [pid(i) for i in (0, 1, 2, 3, 500)]}]}
    hits = m.col.query(Q, 10, nprobe=1, filter=selective)
    assert hits.strategy == "flat"
    assert (hits.found == 5).all()  # flat reads every allowed row
    assert all(sorted(row[:5].tolist()) == selective["must"][0]["has_id"] for row in hits.ids)
    assert hits.ids[0, 0] == pid(0) and hits.ids[3, 0] == pid(3)
    broad = {"must_not": [{"key": "label", "match": {"value": 0}}]}
    hits = m.col.query(Q, 10, nprobe=1, filter=broad)
    assert hits.strategy == "ivf"
    assert_only_matching(m, hits, broad)
    if store_vectors:
        assert m.col.query(Q, 10, exact=True, filter=broad).strategy == "exact"
    # the buffer is always brute force
    new = np.arange(3000, 3020)
    m.upsert(pid(new), X[:20] + 0.02, [payload(i) for i in new])
    only_buffer = {"must": [{"has_id": pid(new).tolist()}]}
    hits = m.col.query(Q, 5, nprobe=1, filter=only_buffer)
    assert hits.strategy == "exact" and (hits.found == 5).all()
    assert set(hits.ids.ravel().tolist()) <= set(pid(new).tolist())
    assert m.col.query(Q, 10, nprobe=1, filter=broad).strategy == "ivf+exact"
    assert m.col.query(Q, 10, nprobe=1, filter=selective).strategy == "flat"


def test_untrained_collection_is_searched_exactly(tmp_path):
    X = clustered(300, DIM, seed=41)
    col = Collection.create(tmp_path / "c", DIM, spec="IVF16,SAQ4", train_threshold=5000,
                            payload_indexes=INDEXES)
    m = Mirror(col)
    m.upsert(pid(np.arange(200)), X[:200], [payload(i) for i in range(200)])
    col.persist()
    m.upsert(pid(np.arange(200, 300)), X[200:], [payload(i) for i in range(200, 300)])
    m.delete(pid(np.arange(0, 300, 7)))
    assert not col.is_trained
    Q = clustered(5, DIM, seed=42)
    for flt in FILTERS.values():
        hits = assert_oracle(m, Q, 10, flt)
        assert hits.strategy in ("exact", "none")


# --- 5. payload indexes: declared, added, dropped, persisted -----------------------------------
def fields_files(path) -> list[str]:
    return sorted(f for f in os.listdir(path) if re.fullmatch(r"fields-\d+\.arrow", f))


def test_payload_indexes_survive_reopen_and_compact(tmp_path):
    path = tmp_path / "c"
    X = clustered(1300, DIM, seed=51)
    col = Collection.create(path, DIM, spec="IVF16,Flat", train_threshold=THRESHOLD,
                            payload_indexes={"label": "integer"})
    m = Mirror(col)
    m.upsert(pid(np.arange(1000)), X[:1000], [payload(i) for i in range(1000)])
    col.persist()
    m.upsert(pid(np.arange(1000, 1300)), X[1000:], [payload(i) for i in range(1000, 1300)])  # buffer
    m.delete(pid(np.arange(0, 1300, 10)))
    assert col.stats()["buffered"] > 0
    color = {"must": [{"key": "color", "match": {"any": ["red", "blue"]}}], "must_not": [{"key": "label", "range": {"gte": 5}}]}
    with pytest.raises(InvalidFilterError, match="'color'"):
        col.count_matching(color)
    col.create_payload_index("color", "keyword")  # over the segment and the unpersisted buffer
    col.create_payload_index("color", "keyword")  # already there: nothing to do
    assert col.payload_indexes == {"color": "keyword", "label": "integer"}
    assert col.stats()["buffered"] == 0 and col.count == len(m.points)
    Q = clustered(6, DIM, seed=52)
    assert col.count_matching(color) == len(m.matching(color))
    assert_oracle(m, Q, 10, color, nprobe=NLIST)
    assert col.verify() == []
    col.close()

    col = m.col = Collection.open(path)
    assert col.payload_indexes == {"color": "keyword", "label": "integer"}
    assert col.count_matching(color) == len(m.matching(color))
    assert_oracle(m, Q, 10, color, nprobe=NLIST)
    assert col.verify() == []
    before = fields_files(path)
    col.compact()
    assert col.stats()["segments"] == 1 and col.stats()["deleted"] == 0
    (entry,) = col._state.manifest["segments"]
    assert entry["fields"] not in before and entry["fields"] in fields_files(path)  # rebuilt
    assert_oracle(m, Q, 10, color, nprobe=NLIST)
    assert col.verify() == []
    # a float index (some prices are JSON integers): range works, match is refused
    col.create_payload_index("price", "float")
    price = {"must": [{"key": "price", "range": {"gt": 12.5, "lte": 70}}]}
    assert col.count_matching(price) == len(m.matching(price))
    with pytest.raises(InvalidFilterError, match="'price'.*range"):
        col.count_matching({"must": [{"key": "price", "match": {"value": 3}}]})
    col.close()

    col = m.col = Collection.open(path)
    assert col.payload_indexes == {"color": "keyword", "label": "integer", "price": "float"}
    assert_oracle(m, Q, 10, price, nprobe=NLIST)
    # a filter is parsed once per collection and payload indexes: an equal dict reuses the parse
    # (one with its keys in another order is parsed again, to the same predicate); dropping an
    # index it names refuses it again
    assert col.count_matching(color) == len(m.matching(color))
    assert col._predicate(json.loads(json.dumps(color))) is col._predicate(color)
    reordered = json.loads(json.dumps(color), object_pairs_hook=lambda kv: dict(kv[::-1]))
    assert col._predicate(reordered) == col._predicate(color)
    col.drop_payload_index("color")
    assert col.payload_indexes == {"label": "integer", "price": "float"}
    with pytest.raises(InvalidFilterError, match="'color'"):
        col.query(Q, 5, filter=color)
    with pytest.raises(InvalidFilterError, match="'color'"):
        col.scroll({"must": [{"key": "color", "match": {"value": "red"}}]})
    with pytest.raises(InvalidParameterError, match="'color'"):
        col.drop_payload_index("color")
    assert_oracle(m, Q, 10, price, nprobe=NLIST)
    assert col.verify() == []
    col.close()
    with Collection.open(path, read_only=True) as col:
        assert col.payload_indexes == {"label": "integer", "price": "float"}
        with pytest.raises(InvalidFilterError, match="'color'"):
            col.count_matching(color)
        assert col.verify() == []


def test_declared_indexes_and_unknown_kinds(tmp_path):
    with pytest.raises(InvalidParameterError, match="date"):
        Collection.create(tmp_path / "a", DIM, payload_indexes={"when": "date"})
    with Collection.create(tmp_path / "b", DIM, spec="IVF16,Flat", payload_indexes=INDEXES) as col:
        assert col.payload_indexes == INDEXES
        with pytest.raises(InvalidParameterError, match="'when'"):
            col.create_payload_index("when", "date")
        assert col.payload_indexes == INDEXES
    with Collection.open(tmp_path / "b") as col:
        assert col.payload_indexes == INDEXES


@pytest.mark.parametrize("where", ["segment", "buffer"])
def test_index_of_a_kind_that_does_not_fit_is_refused_and_changes_nothing(tmp_path, where):
    path = tmp_path / "c"
    X = clustered(1100, DIM, seed=61)
    bad_id = pid(1050) if where == "buffer" else pid(333)
    payloads = [{**payload(i), "code": i} for i in range(1100)]
    payloads[1050 if where == "buffer" else 333]["code"] = "A-12"  # one string among integers
    col = Collection.create(path, DIM, spec="IVF16,Flat", train_threshold=THRESHOLD, payload_indexes={"label": "integer"})
    col.upsert(pid(np.arange(1000)), X[:1000], payloads[:1000])
    col.persist()
    col.upsert(pid(np.arange(1000, 1100)), X[1000:], payloads[1000:])
    col.delete([pid(5)])
    count = col.count
    label3 = col.count_matching(FILTERS["label"])
    with pytest.raises(InvalidParameterError, match=rf"'code'.*point {bad_id}\b"):
        col.create_payload_index("code", "integer")
    assert col.payload_indexes == {"label": "integer"} and col.count == count
    assert col.count_matching(FILTERS["label"]) == label3
    with pytest.raises(InvalidFilterError, match="'code'"):
        col.count_matching({"must": [{"key": "code", "match": {"value": 1}}]})
    with pytest.raises(InvalidParameterError, match=r"point \d+"):
        col.create_payload_index("color", "bool")
    assert col.verify() == []
    col.close()
    with Collection.open(path) as col:
        assert col.payload_indexes == {"label": "integer"} and col.count == count
        assert col.count_matching(FILTERS["label"]) == label3
        assert col.verify() == []
        # the field as keyword fails too (integers are not strings), naming the first integer
        with pytest.raises(InvalidParameterError, match=r"'code'.*point \d+"):
            col.create_payload_index("code", "keyword")
        assert col.payload_indexes == {"label": "integer"}


# --- 6. damaged index files ---------------------------------------------------------------------
@pytest.fixture()
def indexed(tmp_path):
    """A closed, trained collection of two segments with payload indexes and tombstones."""
    path = tmp_path / "c"
    X = clustered(1100, DIM, seed=71)
    with Collection.create(path, DIM, spec="IVF16,Flat", train_threshold=THRESHOLD, payload_indexes=INDEXES) as col:
        col.upsert(pid(np.arange(1000)), X[:1000], [payload(i) for i in range(1000)])
        col.persist()
        col.upsert(pid(np.arange(1000, 1100)), X[1000:], [payload(i) for i in range(1000, 1100)])
        col.delete(pid(np.arange(0, 1100, 6)))
        col.persist()
        assert col.verify() == []
        names = [e["fields"] for e in col._state.manifest["segments"]]
    assert len(names) == 2 and sorted(names) == fields_files(path)
    return path, names


def damage(target, how: str):
    data = bytearray(target.read_bytes())
    if how == "truncate":
        target.write_bytes(bytes(data[:len(data) // 2]))
    elif how == "missing":
        target.unlink()
    elif how == "append":
        target.write_bytes(bytes(data) + b"\0" * 8)
    else:  # flip bytes: the Arrow magic at the start, or the middle of the column data
        i = 0 if how == "flip start" else len(data) // 2
        data[i:i + 4] = bytes(b ^ 0x5A for b in data[i:i + 4])
        target.write_bytes(bytes(data))


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("how", ["truncate", "missing", "append", "flip start", "flip middle"])
def test_damaged_fields_file_is_detected_and_named(indexed, how, which):
    path, names = indexed
    name = names[which]
    damage(path / name, how)
    try:
        col = Collection.open(path, read_only=True)
    except CorruptFileError as exc:
        assert name in str(exc)
        return
    assert how.startswith("flip"), "a file of the wrong size must be refused at open"
    with col:
        problems = col.verify()
    assert problems and any(p.startswith(name) for p in problems), problems


def test_verify_names_a_fields_file_damaged_after_open(indexed):
    path, names = indexed
    with Collection.open(path, read_only=True) as col:
        damage(path / names[1], "truncate")
        problems = col.verify()
    assert problems and problems[0].startswith(names[1])
    with pytest.raises(CorruptFileError, match=re.escape(names[1])):
        Collection.open(path)


# --- 7. count_matching and scroll ---------------------------------------------------------------
@pytest.fixture()
def everywhere(tmp_path):
    m, Q, _ = build(tmp_path / "c")
    return m


def scroll_all(col, flt, limit, **kw):
    """Every page of a scroll; asserts each page but the last is full."""
    pages, cursor = [], None
    while True:
        page, cursor = col.scroll(flt, limit=limit, cursor=cursor, **kw)
        pages.append(page)
        assert len(page) <= limit
        if cursor is None:
            break
        assert len(page) == limit and cursor > page[-1].id
    assert all(len(p) == limit for p in pages[:-1])
    return [p for page in pages for p in page]


def test_count_matching_and_scroll_equal_the_oracle(built):
    m = built()[0]
    col = m.col
    assert col.count_matching(None) == col.count_matching({}) == col.count == len(m.points)
    for name, flt in [*FILTERS.items(), ("all", None)]:
        truth = m.matching(flt).tolist()
        assert col.count_matching(flt) == len(truth), name
        for limit in (7, 100, 5000):
            points = scroll_all(col, flt, limit)
            assert [p.id for p in points] == truth, (name, limit)
        assert all(p.payload == m.points[p.id][1] and p.vector is None for p in points)
    # page by page through a small filter, one point at a time
    few = FILTERS["few"]
    assert [p.id for p in scroll_all(col, few, 1)] == m.matching(few).tolist()
    # vectors on request, from segments and the buffer alike
    points = scroll_all(col, FILTERS["nested"], 50, with_vectors=True, with_payloads=False)
    for p in points:
        assert p.payload is None
        np.testing.assert_allclose(p.vector, m.points[p.id][0], rtol=1e-6)
    # a cursor that is not an id starts at the next id; past the end: nothing
    truth = m.matching(FILTERS["label"])
    page, cursor = col.scroll(FILTERS["label"], limit=3, cursor=int(truth[10]) - 1)
    assert [p.id for p in page] == truth[10:13].tolist() and cursor == truth[13]
    assert col.scroll(FILTERS["label"], limit=3, cursor=int(truth[-1]) + 1) == ([], None)
    assert col.scroll(FILTERS["none"]) == ([], None)


def test_scroll_and_count_after_persist_reopen_and_compact(everywhere, tmp_path):
    m = everywhere
    m.col.persist()
    m.col.close()
    m.col = Collection.open(tmp_path / "c")
    for flt in FILTERS.values():
        assert [p.id for p in scroll_all(m.col, flt, 33)] == m.matching(flt).tolist()
    m.col.compact()
    for flt in FILTERS.values():
        assert m.col.count_matching(flt) == len(m.matching(flt))
        assert [p.id for p in scroll_all(m.col, flt, 64)] == m.matching(flt).tolist()
    m.col.close()


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "3"])
def test_scroll_limit_is_validated(built, limit):
    with pytest.raises(InvalidParameterError, match="limit"):
        built()[0].col.scroll(FILTERS["label"], limit=limit)


def test_scroll_and_count_refuse_bad_filters(built):
    col = built()[0].col
    with pytest.raises(InvalidParameterError):
        col.scroll(None, cursor=-1)
    for bad in ({"must": [{"key": "note", "match": {"value": "x"}}]},  # not indexed
                {"must": [{"key": "label", "match": {"value": "3"}}]},  # wrong type
                {"filter": []}, "{not json"):
        with pytest.raises(InvalidFilterError):
            col.count_matching(bad)
        with pytest.raises(InvalidFilterError):
            col.scroll(bad)
        with pytest.raises(InvalidFilterError):
            col.query(np.zeros(DIM), 3, filter=bad)
    with pytest.raises(InvalidFilterError, match="'note'"):
        col.count_matching({"must": [{"key": "note", "match": {"value": "x"}}]})


# --- 8. payloads that do not fit an indexed field are refused at upsert ------------------------
BAD_VALUES = {
    "string for integer": ("label", "3"),
    "float for integer": ("label", 3.5),
    "bool for integer": ("label", True),
    "integer beyond int64": ("label", 2 ** 63),
    "integer for keyword": ("color", 5),
    "list for keyword": ("color", ["red"]),
    "object for keyword": ("color", {"name": "red"}),
    "string for float": ("price", "1.0"),
    "bool for float": ("price", False),
    "integer for bool": ("sold", 1),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_upsert_of_a_payload_that_does_not_fit_is_refused_whole(tmp_path, case):
    field, value = BAD_VALUES[case]
    X = clustered(1000, DIM, seed=81)
    col = Collection.create(tmp_path / "c", DIM, spec="IVF16,Flat", train_threshold=THRESHOLD,
                            payload_indexes=INDEXES)
    m = Mirror(col)
    m.upsert(pid(np.arange(900)), X[:900], [payload(i) for i in range(900)])
    col.persist()
    m.upsert(pid(np.arange(900, 950)), X[900:950], [payload(i) for i in range(900, 950)])
    stats, label3 = col.stats(), col.count_matching(FILTERS["label"])
    # a batch of a new point, the bad one, and an overwrite of a stored point: all or nothing
    ids = [pid(960), pid(961), pid(10), pid(920)]
    bad = {**payload(961), field: value}
    with pytest.raises(InvalidParameterError, match=rf"{field!r}.*point {pid(961)}\b"):
        col.upsert(ids, X[960:964], [payload(960), bad, new_payload(10), new_payload(920)])
    assert col.stats() == stats and col.count == len(m.points)
    assert col.get([pid(960), pid(961)]) == []
    assert col.payloads([pid(10), pid(920)]) == [payload(10), payload(920)]
    assert col.count_matching(FILTERS["overwritten"]) == 0
    assert col.count_matching(FILTERS["label"]) == label3
    assert [p.id for p in scroll_all(col, None, 1000)] == m.matching(None).tolist()
    # into an empty buffer too (the persisted state only)
    col.persist()
    with pytest.raises(InvalidParameterError, match=rf"point {pid(961)}\b"):
        col.upsert([pid(961)], X[961:962], [bad])
    assert col.count == len(m.points) and col.stats()["buffered"] == 0
    col.close()
    with Collection.open(tmp_path / "c") as col:
        assert col.count == len(m.points) and col.get([pid(961)]) == []
        assert col.verify() == []


def test_values_that_fit_are_stored_and_filterable(tmp_path):
    """null and absent values, integers in a float field, any value in an unindexed field."""
    col = Collection.create(tmp_path / "c", DIM, spec="Flat", payload_indexes=INDEXES)
    m = Mirror(col)
    payloads = [{"label": None, "color": None, "price": None, "sold": None}, {}, None,
                {"price": 7, "note": {"deep": [1, 2]}}, {"label": -2 ** 63, "price": 1e300, "sold": True},
                {"label": 2 ** 63 - 1, "color": "", "price": -0.5, "sold": False}]
    m.upsert(np.arange(len(payloads)), np.eye(len(payloads), DIM), payloads)
    for flt in [FILTERS["is_empty"], {"must": [{"key": "price", "range": {"gte": 7}}]},
                {"must": [{"key": "label", "range": {"lt": 0}}]},
                {"must": [{"key": "label", "match": {"value": 2 ** 63 - 1}}]},
                {"must": [{"key": "color", "match": {"value": ""}}]},
                {"must": [{"is_empty": {"key": "sold"}}, {"is_empty": {"key": "color"}}]}]:
        assert col.count_matching(flt) == len(m.matching(flt)) > 0, flt
        assert [p.id for p in col.scroll(flt)[0]] == m.matching(flt).tolist()
    col.persist()
    assert col.count_matching(FILTERS["is_empty"]) == len(m.matching(FILTERS["is_empty"]))
    col.close()


BAD_FILTERS = {
    "not an object": [{"key": "label", "match": {"value": 1}}],
    "unknown clause": {"filter": []},
    "clause not a list": {"must": "label"},
    "condition not an object": {"must": [3]},
    "unknown condition": {"must": [{"key": "label", "equals": 1}]},
    "bare condition": {"key": "label", "match": {"value": 1}},
    "key not a string": {"must": [{"key": 3, "match": {"value": 1}}]},
    "unindexed field": {"must": [{"key": "note", "match": {"value": "x"}}]},
    "match of two kinds": {"must": [{"key": "label", "match": {"value": 1, "any": [2]}}]},
    "match unknown key": {"must": [{"key": "label", "match": {"equals": 1}}]},
    "match any not a list": {"must": [{"key": "color", "match": {"any": "red"}}]},
    "match wrong type": {"must": [{"key": "label", "match": {"value": "1"}}]},
    "match bool for integer": {"must": [{"key": "label", "match": {"any": [1, True]}}]},
    "match integer for bool": {"must": [{"key": "sold", "match": {"value": 1}}]},
    "match integer beyond int64": {"must": [{"key": "label", "match": {"value": 2 ** 63}}]},
    "match on a float field": {"must": [{"key": "price", "match": {"value": 1.5}}]},
    "range on a keyword": {"must": [{"key": "color", "range": {"gt": 1}}]},
    "range without bounds": {"must": [{"key": "price", "range": {}}]},
    "range unknown bound": {"must": [{"key": "price", "range": {"above": 1}}]},
    "range bound a string": {"must": [{"key": "price", "range": {"gt": "1"}}]},
    "range bound a bool": {"must": [{"key": "label", "range": {"gt": True}}]},
    "range bound NaN": {"must": [{"key": "price", "range": {"gt": float("nan")}}]},
    "has_id not a list": {"must": [{"has_id": 3}]},
    "has_id negative": {"must": [{"has_id": [1, -1]}]},
    "has_id bool": {"must": [{"has_id": [True]}]},
    "has_id extra key": {"must": [{"has_id": [1], "key": "label"}]},
    "is_empty unindexed": {"must": [{"is_empty": {"key": "note"}}]},
    "is_empty extra key": {"must": [{"is_empty": {"key": "label", "value": 1}}]},
    "nested unindexed": {"should": [{"must_not": [{"key": "note", "match": {"value": 1}}]}]},
    "too deep": functools.reduce(lambda f, _: {"must": [f]}, range(40), {"must": [{"has_id": [1]}]}),
    "not JSON": "{must: [",
}


@pytest.mark.parametrize("case", list(BAD_FILTERS))
def test_malformed_filters_are_refused_everywhere(tmp_path, case):
    col = Collection.create(tmp_path / "c", DIM, spec="Flat", payload_indexes=INDEXES)
    col.upsert([1, 2], np.eye(2, DIM), [payload(1), payload(2)])
    for call in (col.count_matching, col.scroll, lambda f: col.query(np.zeros(DIM), 2, filter=f),
                 lambda f: col.search(np.zeros(DIM), 2, filter=f)):
        with pytest.raises(InvalidFilterError, match=r"^filter"):
            call(BAD_FILTERS[case])
    col.close()


def test_filter_given_as_json_text_and_empty_filters(built):
    m = built()[0]
    col = m.col
    for flt in FILTERS.values():
        assert col.count_matching(json.dumps(flt)) == len(m.matching(flt))
    for empty in (None, {}, "{}", {"must": [], "should": [], "must_not": []}):
        assert col.count_matching(empty) == col.count
        assert col.query(np.zeros(DIM), 3, nprobe=2, filter=empty).strategy == "ivf+exact"


def test_exact_search_needs_raw_vectors(tmp_path):
    m, _ = one_segment(tmp_path / "c", store_vectors=False, n=900)
    with pytest.raises(InvalidParameterError, match="store_vectors"):
        m.col.query(np.zeros(DIM), 3, exact=True, filter=FILTERS["label"])


def test_range_bound_beyond_int64(tmp_path):
    """A bound past int64 bounds everything or nothing, exactly."""
    col = Collection.create(tmp_path / "c", DIM, spec="Flat", payload_indexes={"label": "integer"})
    col.upsert([1, 2], np.eye(2, DIM), [{"label": 1}, {"label": 2}])
    assert col.count_matching({"must": [{"key": "label", "range": {"lt": 2 ** 70}}]}) == 2
    assert col.count_matching({"must": [{"key": "label", "range": {"gt": 2 ** 70}}]}) == 0
