"""Index with the exact codec (``Flat``, ``IVF{nlist},Flat``) against the brute-force oracles in
tests/naive.py, and every bad input: a ValueError subclass with a clear message, index unchanged."""

import numpy as np
import pytest

from annvq import Index
from annvq.errors import (DimensionMismatchError, InvalidParameterError, InvalidSpecError, InvalidVectorsError,
                          NotTrainedError)
from annvq.quantizers import make_codec
from naive import clustered, exact_knn, recall

NLIST = 16
METRICS = ("l2", "ip", "cosine")


@pytest.fixture(scope="module")
def built(small_data):
    """One trained and filled IVF16,Flat index per metric."""
    X, _ = small_data
    return {m: Index(32, f"IVF{NLIST},Flat", m).train(X).add(X) for m in METRICS}


def true_values(X, Q, ids, metric):
    """The reported distance of every (query, id) pair, from numpy in float64."""
    X, Q = X.astype(np.float64), Q.astype(np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    if metric == "l2":
        return np.linalg.norm(X[ids] - Q[:, None, :], axis=2)
    return np.einsum("qkd,qd->qk", X[ids], Q)


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_flat_full_probe_is_exact(built, small_data, metric):
    X, Q = small_data
    D, I = built[metric].search(Q, 10, nprobe=NLIST)
    assert recall(I, exact_knn(X, Q, 10, metric)) == 1.0
    np.testing.assert_allclose(D, true_values(X, Q, I, metric), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_flat_equals_exact(small_data, metric):
    X, Q = small_data
    index = Index(32, "Flat", metric).train(X).add(X)
    D, I = index.search(Q, 10)
    np.testing.assert_array_equal(I, exact_knn(X, Q, 10, metric))
    np.testing.assert_allclose(D, true_values(X, Q, I, metric), rtol=1e-4, atol=1e-4)
    # l2 ascending; ip and cosine are similarities, descending
    assert (np.diff(D, axis=1) >= 0).all() if metric == "l2" else (np.diff(D, axis=1) <= 0).all()


@pytest.mark.parametrize("metric", METRICS)
def test_recall_never_drops_as_nprobe_grows(built, small_data, metric):
    X, Q = small_data
    truth = exact_knn(X, Q, 10, metric)
    recalls = [recall(built[metric].search(Q, 10, nprobe=p)[1], truth) for p in (1, 2, 4, 8, 16)]
    assert recalls == sorted(recalls)
    assert recalls[0] < 1.0 and recalls[-1] == 1.0  # the sweep moves: not trivially flat


def test_missing_results_are_padded(small_data):
    X, Q = small_data
    index = Index(32, "Flat", "l2").train(X[:100]).add(X[:5])
    D, I = index.search(Q[:3], 8)
    assert (I[:, 5:] == -1).all() and np.isinf(D[:, 5:]).all()
    assert sorted(I[0, :5]) == [0, 1, 2, 3, 4]


# --- bad input ---------------------------------------------------------------------------------
def snapshot(index, Q):
    D, I = index.search(Q, 5, nprobe=4)
    return index.ntotal, index.centroids_.copy(), D, I


def assert_unchanged(index, Q, before):
    ntotal, centroids, D, I = snapshot(index, Q)
    assert ntotal == before[0]
    np.testing.assert_array_equal(centroids, before[1])
    np.testing.assert_array_equal(D, before[2])
    np.testing.assert_array_equal(I, before[3])


def with_bad(Q, value):
    bad = Q.copy()
    bad[3, 7] = value
    return bad


BAD_CALLS = {
    "train: wrong dim": (lambda ix, X, Q: ix.train(X[:, :31]), DimensionMismatchError, "31 dimensions.*expects 32"),
    "add: wrong dim": (lambda ix, X, Q: ix.add(np.zeros((4, 33))), DimensionMismatchError, "33 dimensions.*expects 32"),
    "search: wrong dim": (lambda ix, X, Q: ix.search(Q[:, :8], 5), DimensionMismatchError, "8 dimensions.*expects 32"),
    "train: NaN": (lambda ix, X, Q: ix.train(with_bad(X, np.nan)), InvalidVectorsError, "NaN or Inf.*row 3"),
    "add: Inf": (lambda ix, X, Q: ix.add(with_bad(X[:10], np.inf)), InvalidVectorsError, "NaN or Inf.*row 3"),
    "search: NaN": (lambda ix, X, Q: ix.search(with_bad(Q, np.nan), 5), InvalidVectorsError, "NaN or Inf.*row 3"),
    "search: -Inf": (lambda ix, X, Q: ix.search(with_bad(Q, -np.inf), 5), InvalidVectorsError, "NaN or Inf"),
    "k = 0": (lambda ix, X, Q: ix.search(Q, 0), InvalidParameterError, r"'k'.*\[1, inf\).*Got 0"),
    "k = -3": (lambda ix, X, Q: ix.search(Q, -3), InvalidParameterError, r"'k'.*Got -3"),
    "nprobe = 0": (lambda ix, X, Q: ix.search(Q, 5, nprobe=0), InvalidParameterError, r"'nprobe'.*\[1, 16\].*Got 0"),
    "nprobe > nlist": (lambda ix, X, Q: ix.search(Q, 5, nprobe=17), InvalidParameterError,
                       r"'nprobe'.*\[1, 16\].*Got 17"),
    "nprobe in params": (lambda ix, X, Q: ix.search(Q, 5, params="nprobe=99"), InvalidParameterError, "Got 99"),
    "unknown param": (lambda ix, X, Q: ix.search(Q, 5, params={"efSearch": 3}), InvalidParameterError,
                      r"Unknown search parameter.*efSearch.*known: \['nprobe', 'rerank'"),
    "malformed param": (lambda ix, X, Q: ix.search(Q, 5, params="nprobe"), InvalidParameterError, "name=value"),
    "too few to train": (lambda ix, X, Q: ix.train(X[:15]), InvalidVectorsError,
                         "IVF16 needs at least 16 vectors; got 15"),
    "empty add": (lambda ix, X, Q: ix.add(np.zeros((0, 32))), InvalidVectorsError, "holds no vectors"),
    "3-D queries": (lambda ix, X, Q: ix.search(Q.reshape(5, 10, 32), 5), InvalidVectorsError, "2-D"),
    "text queries": (lambda ix, X, Q: ix.search([["a"] * 32], 5), InvalidVectorsError, "numeric"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_leaves_index_unchanged(small_data, case):
    X, Q = small_data
    index = Index(32, f"IVF{NLIST},Flat", "l2").train(X).add(X[:2000])
    before = snapshot(index, Q)
    call, error, message = BAD_CALLS[case]
    with pytest.raises(error, match=message) as info:
        call(index, X, Q)
    assert isinstance(info.value, ValueError)
    assert_unchanged(index, Q, before)


@pytest.mark.parametrize("action", ["add", "search"])
def test_add_or_search_before_train(small_data, action):
    X, Q = small_data
    index = Index(32, f"IVF{NLIST},Flat", "l2")
    with pytest.raises(NotTrainedError, match=f"Cannot {'add vectors' if action == 'add' else 'search'} before "
                                              r"the index is trained: call train\(X\) first"):
        index.add(X) if action == "add" else index.search(Q, 5)
    assert not index.is_trained and index.ntotal == 0
    index.train(X).add(X[:100])  # still usable afterwards
    assert index.ntotal == 100


@pytest.mark.parametrize("spec", [f"IVF{NLIST},SAQ4", f"IVF{NLIST},PQ8x8", f"IVF{NLIST},LVQ4x8"])
def test_a_model_that_planned_a_search_still_trains(small_data, spec):
    """A plan reads the codec's default search parameters (LVQ4x8's reorder is its own) and
    caches them on the codec as a read-only mapping; the codec must still deep-copy for `train`."""
    X, Q = small_data
    index = Index(32, spec, "l2")
    assert dict(index.plan(Q, 5).params) == {n: p[3] for n, p in index.codec.search_params.items()}
    index.train(X).add(X)
    assert index.search(Q, 5)[1].shape == (len(Q), 5)


@pytest.mark.parametrize("name", ["SAQ4", "CAQ4", "PQ8x8", "LVQ4"])
def test_untrained_codec_refuses_to_encode(small_data, name):
    X, _ = small_data
    codec = make_codec(name, 32, "l2")
    assert not codec.is_trained
    with pytest.raises(NotTrainedError, match=f"Cannot encode before the {name} codec is trained: call fit first"):
        codec.encode(X[:4], np.zeros((1, 32), np.float32), np.zeros(4, np.int64))


def test_training_on_too_few_vectors_leaves_untrained(small_data):
    X, _ = small_data
    index = Index(32, f"IVF{NLIST},Flat", "cosine")
    with pytest.raises(InvalidVectorsError, match="needs at least 16 vectors"):
        index.train(X[:10])
    assert not index.is_trained


def test_cosine_rejects_zero_vector(built, small_data):
    X, Q = small_data
    index = built["cosine"]
    before = snapshot(index, Q)
    with pytest.raises(InvalidVectorsError, match="zero vector"):
        index.add(np.zeros((2, 32), np.float32))
    assert_unchanged(index, Q, before)


@pytest.mark.parametrize("spec, message", [
    ("IVF16,Bogus", "Unknown codec 'Bogus'"),
    ("", "non-empty string"),
    ("IVF16", "Cannot parse index spec .IVF16.: expected"),
    ("Flat,IVF16", "Cannot parse index spec"),
    ("IVF0,Flat", "at least one list"),
])
def test_unknown_spec(spec, message):
    with pytest.raises(InvalidSpecError, match=message) as info:
        Index(32, spec, "l2")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("kwargs, message", [
    ({"dim": 0}, r"'dim'.*Got 0"),
    ({"metric": "hamming"}, "'metric' parameter must be one of l2, ip, cosine. Got 'hamming'"),
])
def test_bad_constructor_arguments(kwargs, message):
    args = {"dim": 32, "spec": "Flat", "metric": "l2", **kwargs}
    with pytest.raises(InvalidParameterError, match=message):
        Index(args["dim"], args["spec"], args["metric"])


def test_unseen_data_is_found(small_data):
    """Queries far from training data still get exact answers at full probe."""
    X, _ = small_data
    Q = clustered(20, 32, seed=9) * 3
    index = Index(32, f"IVF{NLIST},Flat", "l2").train(X).add(X)
    assert recall(index.search(Q, 5, nprobe=NLIST)[1], exact_knn(X, Q, 5)) == 1.0


def test_train_with_given_centroids_uses_them_and_checks_shape(small_data):
    X, Q = small_data
    shared = Index(X.shape[1], "IVF8,Flat").train(X).centroids_
    index = Index(X.shape[1], "IVF8,Flat").train(X, centroids=shared).add(X)
    assert np.array_equal(index.centroids_, shared)
    _, I = index.search(Q, 10, nprobe=8)
    assert recall(I, exact_knn(X, Q, 10)) == 1.0
    with pytest.raises(ValueError, match="centroids must have 8 rows"):
        Index(X.shape[1], "IVF8,Flat").train(X, centroids=shared[:4])
    with pytest.raises(ValueError, match="no coarse quantizer"):
        Index(X.shape[1], "Flat").train(X, centroids=shared)


@pytest.mark.parametrize("spec,assigned", [("IVF8,Flat", 0), ("IVF8,SAQ4", 0), ("IVF8,PQ8x4fs", 256 * 16),
                                            ("IVF8,LVQ8", None)])
def test_training_assigns_only_the_rows_the_codec_reads(small_data, spec, assigned, monkeypatch):
    """Given centroids, train searches lists only for the training rows the codec's fit reads:
    none for Flat and SAQ, PQ's sample (256 rows per sub-centroid), all of them for LVQ's mean
    residual. Assigning all 60,000 fashion-mnist rows was half an IVF-Flat build."""
    X, _ = small_data
    X = np.concatenate([X] * 3)  # more rows than PQ's sample
    shared = Index(X.shape[1], "IVF8,Flat").train(X).centroids_
    calls = []
    original = Index._assign
    monkeypatch.setattr(Index, "_assign", lambda self, rows, C: calls.append(len(rows)) or original(self, rows, C))
    Index(X.shape[1], spec).train(X, centroids=shared)
    assert sum(calls) == (len(X) if assigned is None else assigned)


def test_small_and_large_products_agree():
    """linalg.matmul's one-thread kernel for a few rows equals BLAS, on dense and sparse rows
    (it skips the rows of W that only zeros meet)."""
    from annvq.linalg import SMALL_ROWS, matmul

    rng = np.random.default_rng(0)
    W = rng.standard_normal((100, 130)).astype(np.float32)
    for n in (1, SMALL_ROWS, SMALL_ROWS + 1):
        X = rng.standard_normal((n, 100)).astype(np.float32)
        np.testing.assert_allclose(matmul(X, W), X @ W, rtol=1e-4, atol=1e-4)
        X[rng.random(X.shape) < 0.6] = 0  # some columns all zero, some rows zero in part
        X[:, :10] = 0
        np.testing.assert_allclose(matmul(X, W), X @ W, rtol=1e-4, atol=1e-4)
    Wt = rng.standard_normal((130, 100)).astype(np.float32).T  # a transposed (strided) operand
    np.testing.assert_allclose(matmul(X[:2], Wt), X[:2] @ Wt, rtol=1e-4, atol=1e-4)


def test_views_share_one_coarse_index(small_data):
    """Index.with_lists views (a collection's segments) probe through the model's one faiss index,
    not one rebuilt per search."""
    X, Q = small_data
    index = Index(32, "IVF8,Flat").train(X[:1000])
    a, b = index.with_lists(index.encode_lists(X[:500])), index.with_lists(index.encode_lists(X[500:1000]))
    a.search(Q[:2], 3, nprobe=2)
    b.search(Q[:2], 3, nprobe=2)
    assert a._coarse_for(a.centroids_) is b._coarse_for(b.centroids_) is index._coarse_for(index.centroids_)


@pytest.mark.parametrize("spec", ["OPQ8,IVF8,SAQ4", "OPQ8,IVF8,CAQ4", "OPQ8,IVF8,LVQ8", "OPQ8,Flat"])
def test_only_pq_takes_a_transform(spec):
    """One refusal for every codec that has no transform; PQ accepts OPQ."""
    with pytest.raises(InvalidSpecError, match="does not support the OPQ8 transform"):
        Index(32, spec)
    assert Index(32, "OPQ8,IVF8,PQ8x8").codec.opq == 8
