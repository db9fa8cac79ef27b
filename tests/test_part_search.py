"""How a part is searched: the scans of a few rows by number and of the allowed rows of probed
lists against a float64 reference, and the planner's choice between IVF with a bitset, IVF over
the raw vectors of the allowed rows and an exhaustive scan of the rows a filter allows."""

import numpy as np
import pyarrow as pa
import pytest

from annvq import Index
from annvq.filters import parse_filter
from annvq.ivf import Probe
from annvq.kernels.config import readonly
from annvq.kernels.driver import ALL_ROWS, row_bitset
from annvq.kernels.flat import ivf_raw_scan, ivf_raw_scan_one, rows_flat_scan, rows_flat_scan_one
from annvq.part_search import scan_part
from annvq.segments import Part, Segment
from naive import clustered

DIM = 24


@pytest.mark.parametrize("l2", [True, False])
def test_rows_flat_scan_equals_float64_reference(l2):
    rng = np.random.default_rng(3)
    X, Q = clustered(500, DIM, seed=3), clustered(7, DIM, seed=4)
    rows = np.sort(rng.choice(len(X), 60, replace=False))
    scores, found = rows_flat_scan(readonly(Q), readonly(rows), readonly(X), l2, 10)
    X64, Q64 = X[rows].astype(np.float64), Q.astype(np.float64)
    ref = ((Q64[:, None] - X64[None]) ** 2).sum(-1) if l2 else -(Q64 @ X64.T)
    order = np.argsort(ref, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(found, rows[order])
    np.testing.assert_allclose(scores, np.take_along_axis(ref, order, 1), rtol=1e-4, atol=1e-3)
    for i in range(len(Q)):  # the serial twin, query by query
        one = rows_flat_scan_one(readonly(Q[i:i + 1]), readonly(rows), readonly(X), l2, 10)
        np.testing.assert_array_equal(one[1][0], found[i])
        np.testing.assert_array_equal(one[0][0], scores[i])


def test_rows_flat_scan_pads_when_fewer_rows_than_k():
    X = clustered(50, DIM, seed=5)
    scores, found = rows_flat_scan(readonly(X[:2]), readonly(np.array([4, 9])), readonly(X), True, 5)
    assert (found[:, :2] >= 0).all() and (found[:, 2:] == -1).all()


def float64_topk(Q, X, candidates, l2: bool, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) (nq, k) of the best candidates (a list of row arrays per query) in float64,
    -1 padded: the reference of the exact scans."""
    rows, scores = np.full((len(Q), k), -1), np.full((len(Q), k), np.inf)
    for i, cand in enumerate(candidates):
        x, q = X[cand].astype(np.float64), Q[i].astype(np.float64)
        ref = ((x - q) ** 2).sum(1) if l2 else -(x @ q)
        order = np.argsort(ref, kind="stable")[:k]
        rows[i, :len(order)], scores[i, :len(order)] = cand[order], ref[order]
    return scores, rows


@pytest.mark.parametrize("l2", [True, False])
@pytest.mark.parametrize("filtered", [True, False])
def test_ivf_raw_scan_equals_float64_reference(l2, filtered):
    """Every query's allowed rows of its probed lists (-1: no list), scored exactly in place,
    best k, -1 padded; the serial twin agrees query by query."""
    rng = np.random.default_rng(11)
    X, Q = clustered(400, DIM, seed=11), clustered(6, DIM, seed=12)
    offsets = np.array([0, 0, 90, 100, 260, 400])  # list 0 empty, list 2 short
    probes = np.array([[1, 3, -1], [4, 2, 1], [0, -1, -1], [2, -1, 0], [3, 4, 1], [-1, -1, 4]])
    mask = rng.random(len(X)) < 0.3 if filtered else np.ones(len(X), bool)
    live = row_bitset(mask) if filtered else ALL_ROWS
    candidates = [np.array([j for lst in row if lst >= 0 for j in range(offsets[lst], offsets[lst + 1]) if mask[j]],
                           np.int64) for row in probes]
    ref_scores, ref_rows = float64_topk(Q, X, candidates, l2, 25)
    args = readonly(offsets), readonly(X), l2, readonly(live), 25
    scores, rows = ivf_raw_scan(readonly(Q), readonly(probes), *args)
    np.testing.assert_array_equal(rows, ref_rows)
    assert (rows[2] == -1).all() and (rows[3, :len(candidates[3])] >= 0).all()
    np.testing.assert_allclose(scores[rows >= 0], ref_scores[rows >= 0], rtol=1e-4, atol=1e-3)
    for i in range(len(Q)):
        one_scores, one_rows = ivf_raw_scan_one(readonly(Q[i:i + 1]), readonly(probes[i:i + 1]), *args)
        np.testing.assert_array_equal(one_rows[0], rows[i])
        np.testing.assert_array_equal(one_scores[0], scores[i])


@pytest.fixture(scope="module", params=[True, False], ids=["raw", "codes"])
def encoded(request):
    """A trained IVF16,SAQ4 model (raw vectors kept or not) and one encoded part whose payload
    field n = row id % 100."""
    X = clustered(3200, DIM, seed=6)
    ids = np.arange(len(X))
    model = Index(DIM, "IVF16,SAQ4", store_vectors=request.param).train(X)
    texts = pa.array([f'{{"n":{i % 100}}}' for i in ids], pa.large_string())
    seg = Segment.encoded(model.encode_lists(X, ids), ids, texts, {"n": "integer"})
    return model, Part(seg), X


@pytest.mark.parametrize("lt, nprobe, strategy", [(1, 2, "flat"), (50, 2, "ivf"), (50, 16, "flat")])
def test_planner_picks_flat_below_an_unfiltered_probe(encoded, lt, nprobe, strategy):
    """Flat when the allowed rows are no more than nprobe lists hold on average, else IVF; either
    way only allowed rows come back. Flat is exact over raw vectors; over codes it reads every
    list, so it finds what an exhaustive scan of the estimates finds (most of the exact top k)."""
    model, part, X = encoded
    pred = parse_filter({"must": {"key": "n", "range": {"lt": lt}}}, {"n": "integer"})
    bits, count = part.allowed(pred)
    assert count == 32 * lt
    plan = model.plan(X[:5] + 0.01, 10, nprobe=nprobe)
    scores, rows, ran = scan_part(model, part, plan, pred, bits, count, exact=False)
    assert ran == strategy
    ids = part.segment.ids[rows]
    assert ((ids % 100) < lt).all()
    if strategy == "flat":
        keep = np.flatnonzero(np.arange(len(X)) % 100 < lt)
        ref = ((plan.queries[:, None] - X[keep][None]) ** 2).sum(-1)
        exact = keep[np.argsort(ref, 1)[:, :10]]
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
        assert overlap == 1.0 if part.segment.vectors is not None else overlap >= 0.8


@pytest.mark.parametrize("nq", [1, 40])  # numba probe for a few queries, faiss for batches
def test_probe_reads_the_nearest_lists_a_filter_keeps(nq):
    """With ``keep``, the probe returns each query's ``budget`` nearest kept lists in order, -1
    padded when the n nearest hold fewer."""
    C, X = clustered(64, DIM, seed=8), clustered(nq, DIM, seed=9)
    keep = np.random.default_rng(10).random(64) < 0.3
    ranked = Probe(readonly(C), "l2", 64)(X)
    got = Probe(readonly(C), "l2", 64, keep=keep, budget=5)(X)
    np.testing.assert_array_equal(got, [[lst for lst in row if keep[lst]][:5] for row in ranked])
    few = Probe(readonly(C), "l2", 8, keep=keep, budget=5)(X)
    expected = [[lst for lst in row[:8] if keep[lst]][:5] for row in ranked]
    np.testing.assert_array_equal(few, [row + [-1] * (5 - len(row)) for row in expected])


@pytest.mark.parametrize("nq", [1, 5])  # the serial kernel for one query, the parallel one for more
def test_sparse_filter_scans_the_allowed_rows_of_the_probed_lists_over_raw_vectors(encoded, nq):
    """10% of the rows allowed, more than an nprobe-1 probe reads: with raw vectors ``ivf-raw``,
    the exact top k of the allowed rows in each query's nearest list; with codes only the
    codec's scan (``ivf``) with the bitset."""
    model, part, X = encoded
    pred = parse_filter({"must": {"key": "n", "range": {"lt": 10}}}, {"n": "integer"})
    bits, count = part.allowed(pred)
    plan = model.plan(X[:nq] + 0.01, 10, nprobe=1)
    scores, rows, ran = scan_part(model, part, plan, pred, bits, count, exact=False)
    seg = part.segment
    assert (seg.ids[rows] % 100 < 10).all()
    if seg.vectors is None:
        assert ran == "ivf"
        return
    assert ran == "ivf-raw"
    nearest = np.argmin(((plan.queries[:, None] - model.centroids_[None]) ** 2).sum(-1), axis=1)
    candidates = [np.array([j for j in range(seg.lists.offsets[lst], seg.lists.offsets[lst + 1])
                            if seg.ids[j] % 100 < 10], np.int64) for lst in nearest]
    ref_scores, ref_rows = float64_topk(plan.queries, seg.vectors, candidates, True, 10)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-3)
