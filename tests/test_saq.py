"""SAQ/CAQ inside the IVF Index: transforms, layout, multi-stage search, metrics, bad input
(docs/algorithms.md §10.1, §10.8, §10.9)."""

import math

import numpy as np
import pytest
from naive import clustered, exact_knn, recall

from annvq import Index, linalg
from annvq.errors import InvalidParameterError, InvalidSpecError, InvalidVectorsError
from annvq.ivf import nearest_lists
from annvq.kernels.half import as_half_bits
from annvq.kernels.probe import (LEAD, nearest_centroids, nearest_centroids_batch, nearest_centroids_raw,
                                nearest_residuals, probe_operands)
from annvq.kernels.scan import FAST_SIGMAS, fast_terms
from annvq.quantizers.code_adjustment import grid_vectors, prefix
from annvq.linalg import apply_pca, fit_pca, pad64, random_orthogonal


def split(n, nq, dim, seed):
    """Base vectors and queries from the same clusters."""
    Z = clustered(n + nq, dim, seed=seed)
    return Z[:n], Z[n:]


@pytest.fixture(scope="module")
def data128():
    return split(3000, 60, 128, seed=3)


@pytest.fixture(scope="module")
def saq4(data128):
    X, _ = data128
    return Index(128, "IVF16,SAQ4").train(X).add(X)


def probed_estimates(index, Q, nprobe):
    """Every probed (query, row) pair's exact-arithmetic estimate, per query: (rows, scores)."""
    probes = nearest_lists(Q, index.centroids_, index.codec_metric, nprobe)
    lists, out = index.lists, []
    for qi, q in enumerate(Q):
        rows, scores = [], []
        for lst in probes[qi]:
            a, b = lists.offsets[lst], lists.offsets[lst + 1]
            rows.append(np.arange(a, b))
            scores.append(index.codec.estimate(q[None], index.centroids_[lst], lists.codes[a:b],
                                               lists.factors[a:b])[0])
        out.append((np.concatenate(rows), np.concatenate(scores)))
    return out


def mean_relative_error(index, X, Q, nprobe):
    errors = []
    for q, (rows, est) in zip(Q, probed_estimates(index, Q, nprobe)):
        true = ((X[index.lists.ids[rows]].astype(np.float64) - q) ** 2).sum(1)
        errors.append(np.abs(est - true) / true)
    return np.mean(np.concatenate(errors))


# --- transforms -----------------------------------------------------------------------------
def test_rotation_and_pca_properties():
    rng = np.random.default_rng(0)
    P = random_orthogonal(96, rng)
    assert np.abs(P.T @ P - np.eye(96)).max() < 1e-5
    X = clustered(500, 96, seed=4)
    d = np.linalg.norm(X[:50] - X[50:100], axis=1)
    np.testing.assert_allclose(np.linalg.norm((X[:50] - X[50:100]) @ P, axis=1), d, rtol=1e-4)
    mean, V, var = fit_pca(X, rng)
    Xp = apply_pca(X, mean, V)
    np.testing.assert_allclose(Xp @ V.T + mean, X, atol=1e-4 * np.abs(X).max())
    np.testing.assert_allclose(Xp.var(axis=0), var, rtol=1e-3, atol=1e-6)
    assert np.all(np.diff(var) <= 0)
    assert pad64(X).shape == (500, 128) and not pad64(X)[:, 96:].any()


@pytest.mark.parametrize("spec", ["SAQ0.5", "SAQ2.5", "CAQ3"])
def test_transform_is_orthogonal_and_layout_matches_the_plan(data128, spec):
    X, _ = data128
    index = Index(128, spec).train(X)
    codec = index.codec
    W = codec.transform_.astype(np.float64)
    assert np.abs(W @ W.T - np.eye(128)).max() < 1e-5
    plan = codec.plan_
    assert sum(length for length, _ in plan) == 128
    nonzero = [(length, bits) for length, bits in plan if bits]
    tail = int(plan[-1][1] == 0)
    assert codec.code_size == sum(length * bits for length, bits in nonzero) // 8
    assert index.bytes_per_vector == codec.code_size + 4 * (2 * len(nonzero) + tail)
    codes, factors = codec.encode(X[:10], np.zeros((1, 128), np.float32), np.zeros(10, np.int64))
    assert codes.shape == (10, codec.code_size) and factors.shape == (10, 2 * len(nonzero) + tail)
    budget = math.floor(codec.bits * 128) + 64
    assert sum(length * bits + 64 for length, bits in nonzero) <= budget


@pytest.mark.parametrize("dim", [200, 256])
def test_variance_bounds_equal_the_pca_projected_query_formula(dim):
    rng = np.random.default_rng(5)
    std = np.concatenate([np.full(64, 8.0), np.full(64, 1.0), np.full(dim - 128, 0.125)])
    Z = (5 + rng.standard_normal((2020, dim)) * std).astype(np.float32) @ random_orthogonal(dim, rng)
    X, Q = Z[:2000], Z[2000:]
    codec = Index(dim, "IVF4,SAQ3").train(X).codec
    assert len(codec.segments) > 1
    Qp = apply_pca(Q, codec.mean_, codec.components_).astype(np.float64)
    weighted = Qp ** 2 * codec.variance_[:dim]
    sigma = np.stack([weighted[:, a:a + length].sum(1) for a, length, _ in codec.segments], 1)
    QW = Q @ codec.transform_  # the exact rotation (searches round it to float16: `rotate`)
    got = codec.variance_bounds(QW, 4.0)  # a batch: BLAS
    np.testing.assert_allclose(got, 4 * np.sqrt(sigma), rtol=1e-4)
    few = codec.variance_bounds(np.ascontiguousarray(QW[:3]), 4.0)  # a few queries: one numba call
    np.testing.assert_allclose(few, 4 * np.sqrt(sigma[:3]), rtol=1e-4)


def test_caq_is_one_segment_without_pca(data128):
    X, _ = data128
    codec = Index(100, "IVF4,CAQ4").train(X[:, :100]).codec
    assert codec.plan_ == [(128, 4)] and codec.mean_ is None
    assert codec.bytes_per_vector == 128 * 4 / 8 + 8


def test_decode_approximates_the_vectors(saq4, data128):
    X, _ = data128
    lists = saq4.lists
    decoded = saq4.codec.decode(lists.codes, lists.factors, saq4.centroids_, lists.assignments())
    err = np.linalg.norm(decoded - X[lists.ids], axis=1) / np.linalg.norm(X[lists.ids] - saq4.centroids_[lists.assignments()], axis=1)
    assert np.median(err) < 0.15


def test_assignment_in_the_pca_basis_equals_the_coarse_quantizers(saq4, data128):
    """SAQ's L2 add finds each row's list in its own basis: the nearest centroid, as faiss finds
    it, and the same codes and factors as `encode` given faiss's lists."""
    X, _ = data128
    codec, C = saq4.codec, saq4.centroids_
    assign, codes, factors = codec.assign_encode(X, C, lambda rows: pytest.fail("asked the coarse quantizer"))
    expected = nearest_lists(X, C, "l2", 1)[:, 0]
    d = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    ties = np.abs(d[np.arange(len(X)), assign] - d[np.arange(len(X)), expected]) <= 1e-4 * d.min(1)
    assert np.all((assign == expected) | ties)
    same = assign == expected
    ref_codes, ref_factors = codec.encode(X[same], C, expected[same])
    equal = np.all(codes[same] == ref_codes, axis=1)
    assert equal.mean() > 0.99  # a code flips only where a coordinate's rounding ties
    np.testing.assert_allclose(factors[same][equal], ref_factors[equal], rtol=1e-4, atol=1e-5)


# --- estimates and multi-stage search ---------------------------------------------------------
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_search_without_pruning_ranks_all_candidates_by_their_estimates(data128, metric):
    X, Q = data128
    index = Index(128, "IVF16,SAQ2.5", metric=metric).train(X).add(X)
    D, I = index.search(Q, 10, nprobe=3, params={"prune": 0, "m": math.inf})
    for qi, (rows, est) in enumerate(probed_estimates(index, Q, 3)):
        order = np.argsort(est, kind="stable")[:10]
        expected = est[order]
        got = D[qi] ** 2 if metric == "l2" else -D[qi]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
        by_id = dict(zip(index.lists.ids[rows], est))
        # ids agree except where two estimates tie to float32 precision
        np.testing.assert_allclose([by_id[i] for i in I[qi]], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def stage1_reference(index, rows=slice(None)):
    """float64 (rescale_P, spread, K1, Kd) of the lists' rows, from the unpacked codes
    (`kernels.scan.fast_terms`): h the P-bit prefix code, rescale_P = rescale ||g||^2 / <h, g>."""
    c, lists = index.codec, index.lists
    z = (c._rotated_centroids(index.centroids_)[lists.assignments()] - c._rotated_origin).astype(np.float64)[rows]
    f = lists.factors[rows].astype(np.float64)
    K1 = f[:, -1] ** 2 if c.tail_dim < c.padded_dim else np.zeros(len(f))
    out = [[], [], None, []]
    for s, ((start, L, B), codes, P) in enumerate(zip(c.segments, c.segment_codes(lists.codes[rows]),
                                                       c._scan_layout[5])):
        g = grid_vectors(codes, B).astype(np.float64)
        h = grid_vectors(prefix(codes, B, P), P).astype(np.float64)
        norm, rescale = f[:, 2 * s], f[:, 2 * s + 1]
        coded = rescale > 0  # a zero residual has no code direction: both terms are 0
        rescale_p = np.where(coded, rescale * (g * g).sum(1) / (h * g).sum(1), 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            tan2 = [r ** 2 * (v * v).sum(1) / norm ** 2 - 1 for r, v in ((rescale, g), (rescale_p, h))]
        zs = z[:, start:start + L]
        out[0].append(rescale_p)
        out[1].append(np.where(coded, norm ** 2 * np.maximum(tan2[1] - tan2[0], 0) / (L - 1), 0))
        out[3].append(2 * (rescale * (g * zs).sum(1) - rescale_p * (h * zs).sum(1)))
        K1 = K1 + norm ** 2 + 2 * rescale_p * (h * zs).sum(1)
    return np.stack(out[0], 1), np.stack(out[1], 1), K1, np.stack(out[3], 1)


@pytest.fixture(scope="module")
def skewed256():
    """Variances falling 15x across 256 dimensions: SAQ4 plans (64, 9), (192, 2), so stage 1
    reads three planes of the first segment and one of the second."""
    X, Q = split(3000, 60, 256, seed=5)
    scale = np.linspace(3, 0.2, 256).astype(np.float32)
    return X * scale, Q * scale


STAGE1_CASES = [("data128", "IVF16,SAQ2.5"), ("data128", "IVF16,CAQ3"), ("skewed256", "IVF16,SAQ4")]


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("data, spec", STAGE1_CASES)
def test_stage1_terms_equal_a_float64_reference(request, data, spec, metric):
    X, _ = request.getfixturevalue(data)
    index = Index(X.shape[1], spec, metric=metric).train(X).add(X)
    c, lists = index.codec, index.lists
    got = fast_terms(lists.offsets, lists.codes, lists.factors, c._rotated_centroids(index.centroids_),
                     c._rotated_origin, *c._scan_layout[:4], c._scan_layout[5], metric == "l2")
    want = stage1_reference(index)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-3, atol=1e-6 * want[1].max())
    if metric == "l2":
        np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-5 * np.abs(want[2]).max())
        np.testing.assert_allclose(got[3], want[3], rtol=1e-3, atol=1e-4 * np.abs(want[3]).max())
    else:  # the inner product involves no centroid term
        assert not got[2].any() and not got[3].any()


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("data, spec", [STAGE1_CASES[0], STAGE1_CASES[2]])
def test_stage1_estimate_is_unbiased_with_the_spread_it_assumes(request, data, spec, metric):
    """Stage 1 prunes on the P-bit estimate rescale_P <h, x> less 2 standard deviations of its
    difference from stage 2's rescale <g, x>; over every probed pair that difference, divided by
    the standard deviation assumed, has mean ~0 and a spread of at most ~1."""
    X, Q = request.getfixturevalue(data)
    index = Index(X.shape[1], spec, metric=metric).train(X).add(X)
    c, lists = index.codec, index.lists
    if data == "skewed256":
        assert list(c._scan_layout[5]) == [3, 1]  # several planes in stage 1
    rescale_p, spread, _, _ = stage1_reference(index)
    QW = c.rotate(Q).astype(np.float64)
    CW = c._rotated_centroids(index.centroids_).astype(np.float64)
    z = []
    for qi, probes in enumerate(nearest_lists(Q, index.centroids_, index.codec_metric, 3)):
        for lst in probes:
            a, b = lists.offsets[lst], lists.offsets[lst + 1]
            x = QW[qi] - CW[lst] if metric == "l2" else QW[qi]
            diff = var = 0.0
            for s, ((start, L, B), codes, P) in enumerate(zip(c.segments, c.segment_codes(lists.codes[a:b]),
                                                               c._scan_layout[5])):
                xs = x[start:start + L]
                diff = diff + rescale_p[a:b, s] * (grid_vectors(prefix(codes, B, P), P) @ xs) \
                    - lists.factors[a:b, 2 * s + 1] * (grid_vectors(codes, B) @ xs)
                var = var + spread[a:b, s] * (xs @ xs)
            coded = var > 0  # a row equal to its centroid has no stage-1 error at all
            z.append(diff[coded] / np.sqrt(var[coded]))
    z = np.concatenate(z)
    assert abs(z.mean()) < 0.1 and 0.7 < z.std() < 1.1
    assert (z > FAST_SIGMAS).mean() < 0.02  # what stage 1 may wrongly prune


def test_pruning_with_m4_costs_almost_no_recall():
    X, Q = split(6000, 200, 256, seed=5)
    truth = exact_knn(X, Q, 10)
    index = Index(256, "IVF16,SAQ4").train(X).add(X)
    assert len([b for _, b in index.codec.plan_ if b]) > 1  # several segments: stage 0 is in play
    for nprobe in (2, 6):
        exhaustive = recall(index.search(Q, 10, nprobe=nprobe, params={"prune": 0})[1], truth)
        pruned = recall(index.search(Q, 10, nprobe=nprobe, params={"m": 4})[1], truth)
        assert pruned >= exhaustive - 0.005
    # m is a per-call knob: a tiny multiplier prunes true neighbours away
    assert recall(index.search(Q, 10, nprobe=6, params="m=0.01")[1], truth) < exhaustive - 0.05


def test_end_to_end_recall_at_8_bits():
    X, Q = split(2000, 100, 256, seed=3)
    truth = exact_knn(X, Q, 10)
    index = Index(256, "IVF8,SAQ8").train(X).add(X)
    assert recall(index.search(Q, 10, nprobe=8)[1], truth) >= 0.99


@pytest.mark.parametrize("l2", [True, False])
@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_pruned_probe_equals_brute_force(decay, l2):
    """Partial-distance probing (one query at a time and a batch) returns the exact n nearest
    rows, best first, by L2 or by largest inner product (rows of unequal norms), on a skewed
    spectrum (where it prunes) and a flat one (where it cannot); with a keep mask, the n nearest
    kept rows, -1 after the last when fewer are kept. The same from raw rows of 190 dimensions
    (not a multiple of the pass width), whose first pass alone is rotated: by a signed
    permutation, exact in float16, into the 192 of the others."""
    rng = np.random.default_rng(5)
    scale = np.exp(-decay * np.arange(192)).astype(np.float32)
    C = rng.standard_normal((300, 192)).astype(np.float32) * scale * rng.uniform(0.5, 1.5, (300, 1)).astype(np.float32)
    X = rng.standard_normal((40, 192)).astype(np.float32) * scale
    cols, signs = rng.permutation(192)[:190], rng.choice(np.float32([-1, 1]), 190)
    W = np.zeros((190, 192), np.float32)
    W[np.arange(190), cols] = signs
    C[:, np.setdiff1d(np.arange(192), cols)] = X[:, np.setdiff1d(np.arange(192), cols)] = 0  # the columns no raw one reaches
    Craw, Xraw, W_lead = C @ W.T, X @ W.T, np.ascontiguousarray(as_half_bits(W)[:, :LEAD])
    X64 = X.astype(np.float64)
    d = ((X64[:, None, :] - C[None]) ** 2).sum(-1) if l2 else -(X64 @ C.T.astype(np.float64))
    ops = probe_operands(C, l2)
    raw = (Craw, ops[0], probe_operands(Craw, l2)[1])
    everything = np.zeros(0, np.bool_)
    for n in (1, 7, 300):
        truth = np.take_along_axis(d, np.argsort(d, axis=1)[:, :n], 1)
        for got in (nearest_centroids(X[:8], C, *ops, n, everything),
                    nearest_centroids_batch(X, C, *ops, n, everything),
                    nearest_centroids_raw(Xraw[:8], W_lead, *raw, n, everything)):
            assert all(len(set(row)) == n for row in got)
            # the n nearest, best first, up to float32 rounding between near-equal distances
            np.testing.assert_allclose(np.take_along_axis(d[:len(got)], got, 1), truth[:len(got)], rtol=1e-5,
                                       atol=1e-4)
    keep = np.random.default_rng(6).random(300) < 0.1  # ~30 kept rows: n = 40 runs out
    for n in (5, 40):
        masked = np.where(keep, d, np.inf)
        want = np.argsort(masked, axis=1)[:, :n]
        for got in (nearest_centroids(X[:8], C, *ops, n, keep), nearest_centroids_batch(X, C, *ops, n, keep),
                    nearest_centroids_raw(Xraw[:8], W_lead, *raw, n, keep)):
            found = got >= 0
            assert (found.sum(1) == min(n, keep.sum())).all() and keep[got[found]].all()
            assert (found[:, :-1] >= found[:, 1:]).all()  # -1 only after the last kept row
            np.testing.assert_allclose(np.take_along_axis(masked[:len(got)], np.where(found, got, want[:len(got)]), 1),
                                       np.take_along_axis(masked[:len(got)], want[:len(got)], 1), rtol=1e-5,
                                       atol=1e-4)


@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_nearest_residuals_are_the_residuals_to_the_nearest_centroid(decay):
    """Encoding's fused assignment: each row's nearest centroid (as brute force finds it), the row
    replaced by its residual to it, and the residual's squared norm from the tail column on."""
    rng = np.random.default_rng(7)
    scale = np.exp(-decay * np.arange(192)).astype(np.float32)
    C = rng.standard_normal((300, 192)).astype(np.float32) * scale
    X = rng.standard_normal((500, 192)).astype(np.float32) * scale
    d = ((X.astype(np.float64)[:, None, :] - C[None]) ** 2).sum(-1)
    R = X.copy()
    lists, tails = nearest_residuals(R, C, *probe_operands(C, True), 150)
    np.testing.assert_allclose(d[np.arange(500), lists], d.min(1), rtol=1e-5)
    np.testing.assert_allclose(R, X - C[lists], atol=1e-6)
    np.testing.assert_allclose(tails, ((X.astype(np.float64) - C[lists])[:, 150:] ** 2).sum(1), rtol=1e-5)


def test_pca_covariance_over_chunks_and_threads_equals_numpys(monkeypatch):
    """fit_pca sums the covariance chunk by chunk on several threads: the variances are numpy's
    float64 covariance eigenvalues, whatever the chunking."""
    X = clustered(1000, 64, seed=8) + 100  # an offset, so the centring matters
    want = np.sort(np.linalg.eigvalsh(np.cov(X.astype(np.float64).T, bias=True)))[::-1]
    for chunk in (7, 64, 4096):
        monkeypatch.setattr(linalg, "COVARIANCE_CHUNK", chunk)
        _, _, var = fit_pca(X, np.random.default_rng(0))
        np.testing.assert_allclose(var, want, rtol=1e-4, atol=1e-5 * want[0])


@pytest.mark.parametrize("spec,metric", [("IVF16,SAQ4", "l2"), ("IVF16,SAQ1.5", "l2"), ("IVF16,CAQ4", "l2"),
                                         ("IVF16,SAQ4", "cosine"), ("IVF16,SAQ4", "ip")])
def test_single_queries_probe_the_lists_a_batch_probes(data128, spec, metric):
    """One query and a batch find their lists by different kernels (in SAQ's PCA basis, or
    through faiss on the raw vectors for CAQ's batches), which agree: so do the results, query
    by query."""
    X, Q = data128
    index = Index(128, spec, metric=metric).train(X).add(X)
    D, I = index.search(Q, 10, nprobe=4)
    for i in range(0, len(Q), 7):
        d1, i1 = index.search(Q[i:i + 1], 10, nprobe=4)
        np.testing.assert_array_equal(i1[0], I[i])
        np.testing.assert_allclose(d1[0], D[i], rtol=1e-5)


def test_recall_grows_with_nprobe(saq4, data128):
    X, Q = data128
    truth = exact_knn(X, Q, 10)
    recalls = [recall(saq4.search(Q, 10, nprobe=n)[1], truth) for n in (1, 2, 4, 8, 16)]
    assert all(b >= a for a, b in zip(recalls, recalls[1:])) and recalls[-1] > 0.85


def test_rerank_uses_exact_vectors(data128):
    X, Q = data128
    index = Index(128, "IVF16,SAQ2,Rerank").train(X).add(X)
    D, I = index.search(Q, 10, nprobe=16, rerank=8)
    np.testing.assert_allclose(D, np.linalg.norm(X[I] - Q[:, None], axis=2), rtol=1e-4)
    assert recall(I, exact_knn(X, Q, 10)) > recall(index.search(Q, 10, nprobe=16, rerank=0)[1], exact_knn(X, Q, 10))


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_inner_product_and_cosine_against_float_reference(data128, metric):
    X, Q = data128
    index = Index(128, "IVF8,SAQ8", metric=metric).train(X).add(X)
    D, I = index.search(Q, 10, nprobe=8)
    Xn, Qn = (X, Q) if metric == "ip" else (X / np.linalg.norm(X, axis=1, keepdims=True),
                                           Q / np.linalg.norm(Q, axis=1, keepdims=True))
    exact = np.einsum("qkd,qd->qk", Xn[I].astype(np.float64), Qn)
    scale = np.linalg.norm(Xn[I], axis=2) * np.linalg.norm(Qn, axis=1)[:, None]
    assert np.abs(D - exact).max() < 0.01 * scale.max()
    assert np.all(np.diff(D, axis=1) <= 0)
    assert recall(I, exact_knn(X, Q, 10, metric=metric)) >= 0.95


def test_saq_beats_caq_on_a_skewed_spectrum_only():
    rng = np.random.default_rng(6)
    basis = random_orthogonal(128, rng)
    skewed = rng.standard_normal((3060, 128)).astype(np.float32) / np.arange(1, 129, dtype=np.float32) @ basis
    flat = rng.standard_normal((3060, 128)).astype(np.float32)
    errors = {}
    for name, Z in {"skewed": skewed, "flat": flat}.items():
        for spec in ("IVF4,SAQ1", "IVF4,CAQ1"):
            index = Index(128, spec).train(Z[:3000]).add(Z[:3000])
            errors[name, spec[5:8]] = mean_relative_error(index, Z[:3000], Z[3000:], 4)
    # 128 dims leave the DP two 64-dim blocks: [(64, 2), (64, 0)] against CAQ's [(128, 1)]
    assert errors["skewed", "CAQ"] > 1.3 * errors["skewed", "SAQ"]
    assert 0.85 < errors["flat", "CAQ"] / errors["flat", "SAQ"] < 1.15


@pytest.mark.parametrize("spec", ["IVF16,SAQ4", "IVF16,CAQ4"])
def test_state_round_trip(data128, spec):
    """The model's arrays, the origin of the scan's centroid terms included (CAQ stores its own;
    SAQ's is its PCA mean, stored once), give the same search after a round trip."""
    X, Q = data128
    index = Index(128, spec).train(X).add(X)
    meta, arrays = index.state()
    assert ("codec.origin" in arrays) == spec.endswith("CAQ4")
    copy = Index.from_state(meta, {k: np.array(v) for k, v in arrays.items()}, index.lists)
    for a, b in zip(index.search(Q, 10, nprobe=4), copy.search(Q, 10, nprobe=4)):
        np.testing.assert_array_equal(a, b)


# --- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["SAQ0.1", "SAQ14", "SAQ13.5", "CAQ0", "CAQ14"])
def test_bits_out_of_range_refused(spec):
    with pytest.raises((InvalidSpecError, InvalidParameterError), match="'bits'"):
        Index(64, f"IVF4,{spec}")


@pytest.mark.parametrize("dim", [0, -3])
def test_dim_below_one_refused(dim):
    with pytest.raises(InvalidParameterError, match="'dim'"):
        Index(dim, "SAQ4")


def test_nan_refused_and_index_untouched(saq4, data128):
    X, Q = data128
    bad = X[:20].copy()
    bad[5, 7] = np.nan
    before = saq4.ntotal
    with pytest.raises(InvalidVectorsError, match="NaN"):
        saq4.add(bad)
    with pytest.raises(InvalidVectorsError, match="NaN"):
        Index(128, "IVF4,SAQ2").train(bad)
    assert saq4.ntotal == before


@pytest.mark.parametrize("params", [{"m": -1.0}, {"m": "4"}, {"m": float("nan")}, {"prune": 2}, {"bits": 3}])
def test_bad_search_parameters_refused(saq4, data128, params):
    with pytest.raises(InvalidParameterError):
        saq4.search(data128[1], 10, nprobe=2, params=params)


@pytest.mark.parametrize("spec", ["SAQ4", "CAQ4"])
def test_cosine_is_the_l2_estimate_on_unit_vectors(spec):
    """Cosine scans as squared L2 between unit vectors: the same neighbours as the L2 index over
    the normalised data (one list around the origin, so the same codes), similarity 1 - d^2 / 2."""
    X, Q = split(3000, 40, 96, seed=8)
    Xn, Qn = (A / np.linalg.norm(A, axis=1, keepdims=True) for A in (X, Q))
    D_cos, I_cos = Index(96, spec, "cosine").train(X).add(X).search(Q, 10)
    D_l2, I_l2 = Index(96, spec, "l2").train(Xn).add(Xn).search(Qn, 10)
    np.testing.assert_array_equal(I_cos, I_l2)
    np.testing.assert_allclose(D_cos, 1 - D_l2 ** 2 / 2, atol=1e-5)


def test_cosine_estimates_centre_the_query_on_its_list():
    """On tight clusters a query is far nearer its centroid than the origin, so the L2 form's
    error (which scales with ||q - c||) beats the inner-product form's (with ||q||): docs/algorithms.md §9."""
    rng = np.random.default_rng(9)
    centres = rng.standard_normal((16, 64)).astype(np.float32)
    X = np.repeat(centres, 200, axis=0) + 0.15 * rng.standard_normal((3200, 64)).astype(np.float32)
    Q = centres[rng.integers(0, 16, 100)] + 0.15 * rng.standard_normal((100, 64)).astype(np.float32)
    Xn, Qn = (A / np.linalg.norm(A, axis=1, keepdims=True) for A in (X, Q))
    errors = {}
    for metric in ("cosine", "ip"):
        D, I = Index(64, "IVF16,CAQ4", metric).train(Xn).add(Xn).search(Qn, 10, nprobe=16)
        errors[metric] = np.abs(D - np.einsum("qd,qkd->qk", Qn, Xn[I])).mean()
    assert errors["cosine"] < 0.5 * errors["ip"]


def test_cosine_has_no_stage_0():
    """Stage 0's Chebyshev bound assumes a list's residuals are centred, which spherical k-means
    centroids do not give: cosine searches ignore m."""
    X, Q = split(3000, 40, 96, seed=10)
    index = Index(96, "IVF8,SAQ4", "cosine").train(X).add(X)
    for q in (Q, Q[:1]):
        D, I = index.search(q, 10, nprobe=4)
        D4, I4 = index.search(q, 10, nprobe=4, params="m=0.5")
        np.testing.assert_array_equal(I, I4)
        np.testing.assert_array_equal(D, D4)


WARM_CHECK = """
import numba, numpy as np
import importlib
from annvq import Index, linalg
from annvq.kernels import driver

modules = [importlib.import_module("annvq.kernels." + name)
           for name in ("bits", "driver", "fastscan", "flat", "half", "probe", "scan")]
dispatchers = list({{id(v): v for m in modules for v in vars(m).values()
                    if isinstance(v, numba.core.registry.CPUDispatcher)}}.values())
rng = np.random.default_rng(0)
X = (rng.standard_normal((2000, 128)) * np.exp(-0.02 * np.arange(128))).astype(np.float32)
index = Index(128, "IVF16,SAQ4", "{metric}").train(X).add(X)
before = {{id(d): len(d.signatures) for d in dispatchers}}
for q in (X[:1], X[:3], X[:50]):
    plan = index.plan(q, 10, nprobe=4)
    index.scan(plan)
    index.scan(plan)  # the plan's cached rotation and lists, as a collection's next segment
    index.scan(plan, live=driver.row_bitset(np.ones(len(X), bool)))
    index.search(q, 10, nprobe=4)
    index.probed(index.plan(q, 10, nprobe=4))  # the lists alone, as a filtered scan of raw vectors asks
    given = index.probed(plan).copy()
    given.setflags(write=False)  # lists probed by a router, as they reach a Ray shard
    index.scan(index.plan(q, 10, nprobe=4, probes=given))
print([d.__name__ for d in dispatchers if len(d.signatures) > before[id(d)]])
"""


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_training_compiles_every_kernel_a_search_runs(metric):
    """codec.warmup (run by train) leaves nothing for a query to compile or load: one query, a
    few, a batch, a collection's next segment, a row bitset, the lists alone and lists probed
    elsewhere. In a fresh process, where no other test has loaded a specialisation already."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", WARM_CHECK.format(metric=metric)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout
