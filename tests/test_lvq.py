"""LVQ codec: grid error bounds, two-level refinement, fused kernels against decoded vectors, specs."""

import numpy as np
import pytest

from annvq import Index
from annvq.errors import InvalidParameterError, InvalidSpecError
from annvq.kernels.bits import pack_bits, unpack_bits
from naive import clustered, exact_knn, recall

DIM = 33  # odd, so nibble and bit packing end mid-byte


@pytest.fixture(scope="module")
def data():
    return clustered(3000, DIM, seed=21), clustered(40, DIM, seed=22)


def rows_of(index, ids):
    pos = np.empty(index.lists.ntotal, np.int64)
    pos[index.lists.ids] = np.arange(index.lists.ntotal)
    return pos[ids]


@pytest.mark.parametrize("B", range(1, 17))
def test_pack_round_trip(B):
    codes = np.random.default_rng(B).integers(0, 1 << B, size=(7, DIM))
    packed = pack_bits(codes, B)
    assert packed.shape == (7, (DIM * B + 7) // 8)
    np.testing.assert_array_equal(unpack_bits(packed, DIM, B), codes)


@pytest.mark.parametrize("B", [1, 2, 3, 4, 5, 8, 11, 16])
def test_decode_error_within_half_step(data, B):
    X, _ = data
    index = Index(DIM, f"IVF8,LVQ{B}").train(X)
    codec, C = index.codec, index.centroids_
    assign = index._assign(X, C)
    lo, delta, _, _ = codec.quantize(X, C, assign)
    codes, _ = codec.encode(X, C, assign)
    err = np.abs(codec.decode(codes, None, C, assign) - X)
    step = delta.astype(np.float32)[:, None]
    assert np.all(err <= step / 2 + 1e-5 * (1 + np.abs(X)))


def test_lvq8_relative_squared_error_is_small():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2000, 64)).astype(np.float32)
    Q = rng.standard_normal((20, 64)).astype(np.float32)
    index = Index(64, "LVQ8").train(X).add(X)
    D, I = index.search(Q, 50)
    exact = ((X[I] - Q[:, None]) ** 2).sum(-1)
    assert np.mean(np.abs(D.astype(np.float64) ** 2 - exact) / exact) < 1e-3


@pytest.mark.parametrize("B1,B2", [(4, 4), (4, 8), (2, 3)])
def test_two_level_error_shrinks_by_about_2_to_the_B2(data, B1, B2):
    X, _ = data
    one = Index(DIM, f"IVF8,LVQ{B1}").train(X)
    two = Index(DIM, f"IVF8,LVQ{B1}x{B2}").train(X)
    assign = one._assign(X, one.centroids_)
    rms = []
    for index in (one, two):
        codes, _ = index.codec.encode(X, index.centroids_, assign)
        rms.append(np.sqrt(np.mean((index.codec.decode(codes, None, index.centroids_, assign) - X) ** 2)))
    ratio = rms[0] / rms[1]
    assert 2 ** B2 / 2 <= ratio <= 2 * 2 ** B2


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("spec", ["IVF8,LVQ8", "IVF8,LVQ4x8", "IVF8,LVQ3", "IVF8,LVQ5x3"])
def test_fused_scores_equal_decoded_distances(data, metric, spec):
    """Scores from the kernels equal the metric on decoded vectors (both levels after re-ranking)."""
    X, Q = data
    index = Index(DIM, spec, metric).train(X).add(X)
    D, I = index.search(Q, 10, nprobe=3)
    rows = rows_of(index, I).ravel()
    lists = index.lists
    dec = index.codec.decode(lists.codes[rows], None, index.centroids_,
                             lists.assignments()[rows]).reshape(len(Q), 10, DIM)
    q = Q / np.linalg.norm(Q, axis=1, keepdims=True) if metric == "cosine" else Q
    expected = (np.linalg.norm(dec - q[:, None], axis=-1) if metric == "l2"
                else np.einsum("qkd,qd->qk", dec, q))
    np.testing.assert_allclose(D, expected, rtol=1e-4, atol=1e-4)


def low_rank(n, dim, rank, seed):
    """Points near a random rank-`rank` subspace, like real embeddings' low intrinsic dimension."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((rank, dim)) / np.sqrt(rank)
    return (rng.standard_normal((n, rank)) @ A + 0.05 * rng.standard_normal((n, dim))).astype(np.float32)


# Cosine neighbours of unit vectors are tighter; LVQ8 keeps about 0.99 there, as faiss's SQ8 does.
@pytest.mark.parametrize("metric,floor", [("l2", 0.99), ("ip", 0.99), ("cosine", 0.98)])
def test_lvq8_recall_with_every_list_probed(metric, floor):
    Y = low_rank(3200, 48, 8, seed=2)
    X, Q = Y[:3000], Y[3000:]
    index = Index(48, "IVF8,LVQ8", metric).train(X).add(X)
    _, I = index.search(Q, 10, nprobe=8)
    assert recall(I, exact_knn(X, Q, 10, metric)) >= floor


def test_two_level_reorder_beats_level_one(data):
    X, Q = data
    truth = exact_knn(X, Q, 10)
    index = Index(DIM, "IVF8,LVQ4x8").train(X).add(X)
    level1 = Index(DIM, "IVF8,LVQ4").train(X).add(X)
    r2 = recall(index.search(Q, 10, nprobe=8, params={"reorder": 8})[1], truth)
    assert r2 > recall(level1.search(Q, 10, nprobe=8)[1], truth)
    assert r2 >= 0.95


def test_rerank_gives_exact_distances(data):
    X, Q = data
    index = Index(DIM, "IVF8,LVQ4,Rerank").train(X).add(X)
    D, I = index.search(Q, 10, nprobe=8)
    np.testing.assert_allclose(D, np.linalg.norm(X[I] - Q[:, None], axis=-1), rtol=1e-4, atol=1e-4)
    assert recall(I, exact_knn(X, Q, 10)) >= 0.99


@pytest.mark.parametrize("spec,size", [("LVQ8", 33 + 4), ("LVQ4", 17 + 4), ("LVQ3", 13 + 4),
                                       ("LVQ4x8", 17 + 33 + 4), ("LVQ16", 66 + 4)])
def test_bytes_per_vector(data, spec, size):
    X, _ = data
    index = Index(DIM, f"IVF4,{spec}").train(X).add(X[:50])
    assert index.bytes_per_vector == size == index.lists.codes.shape[1] + 4 * index.lists.factors.shape[1]


def test_state_round_trip(data):
    X, Q = data
    index = Index(DIM, "IVF8,LVQ4x4", "ip").train(X).add(X)
    meta, arrays = index.state()
    again = Index.from_state(meta, arrays, index.lists)
    for a, b in zip(index.search(Q, 5, nprobe=2), again.search(Q, 5, nprobe=2)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec,words", [
    ("IVF4,LVQ0", ["LVQ0", "[1, 16]", "0"]),
    ("IVF4,LVQ17", ["LVQ17", "[1, 16]", "17"]),
    ("IVF4,LVQ4x0", ["LVQ4x0", "[1, 16]"]),
    ("IVF4,LVQ4x17", ["LVQ4x17", "17"]),
    ("OPQ11,IVF4,LVQ8", ["OPQ11"]),
])
def test_bad_specs(spec, words):
    with pytest.raises(InvalidSpecError) as err:
        Index(DIM, spec)
    for word in words:
        assert word in str(err.value)


def test_bad_search_params(data):
    X, Q = data
    two = Index(DIM, "IVF4,LVQ4x4").train(X).add(X)
    with pytest.raises(InvalidParameterError, match="reorder"):
        two.search(Q, 5, params={"reorder": 0})
    one = Index(DIM, "IVF4,LVQ4").train(X).add(X)
    with pytest.raises(InvalidParameterError, match="reorder"):
        one.search(Q, 5, params={"reorder": 4})
