"""CAQ encoder and estimator (docs/algorithms.md §10.2-10.5)."""

import itertools

import numpy as np
import pytest

from annvq.linalg import random_orthogonal
from annvq.quantizers.code_adjustment import ROUNDS, caq_encode, caq_row, estimate_ip, grid_vectors, prefix, reconstruct


def cosines(codes, bits, O):
    g = grid_vectors(codes, bits).astype(np.float64)
    return np.einsum("ij,ij->i", g, O) / np.linalg.norm(g, axis=1) / np.linalg.norm(O, axis=1)


@pytest.mark.parametrize("bits", [1, 3, 8, 13])
def test_codes_in_range_and_factors(bits):
    O = np.random.default_rng(bits).standard_normal((50, 64)).astype(np.float32) * 7
    O[3] = 0  # a zero vector keeps zero factors instead of dividing by zero
    codes, norms, rescale = caq_encode(O, bits, ROUNDS)
    assert codes.max() <= 2 ** bits - 1
    np.testing.assert_allclose(norms, np.linalg.norm(O, axis=1), rtol=1e-6)
    g = grid_vectors(codes, bits).astype(np.float64)
    live = np.arange(50) != 3
    # rescale = ||o||^2 / <g, o>, so that rescale * <g, o> gives back ||o||^2
    np.testing.assert_allclose(rescale[live] * np.einsum("ij,ij->i", g, O)[live], norms[live] ** 2, rtol=1e-4)
    assert norms[3] == 0 and rescale[3] == 0


def test_cosine_never_decreases_and_bookkeeping_is_exact():
    rng = np.random.default_rng(0)
    for bits in (2, 3, 5):
        o = rng.standard_normal(128).astype(np.float32) * np.linspace(3, 0.1, 128).astype(np.float32)
        u = o / np.linalg.norm(o.astype(np.float64))
        v = np.abs(u).max()
        previous = 0.0
        for rounds in range(ROUNDS + 1):
            code, book = np.zeros(128, np.uint16), np.zeros(2)
            cos, _, _ = caq_row(o, bits, rounds, code, book)
            # the incrementally tracked S = <x, u> and N = ||x||^2 equal a direct recomputation
            x = 2 * v / 2 ** bits * (code + 0.5) - v
            assert book[0] == pytest.approx(x @ u, rel=1e-9, abs=1e-12)
            assert book[1] == pytest.approx(x @ x, rel=1e-9)
            assert cos == pytest.approx(cosines(code[None], bits, o[None].astype(np.float64))[0], abs=1e-9)
            assert cos >= previous - 1e-12
            previous = cos


def test_adjustment_beats_the_initial_grid():
    O = np.random.default_rng(1).standard_normal((200, 256)).astype(np.float32)
    init = cosines(caq_encode(O, 2, 0)[0], 2, O).mean()
    adjusted = cosines(caq_encode(O, 2, ROUNDS)[0], 2, O).mean()
    assert init == pytest.approx(0.9086, abs=0.003)  # the initial grid alone, per the reference
    assert adjusted > init + 0.02


def test_equals_exhaustive_search_on_tiny_cases():
    """d = 4, B = 2: enumerate all 4^4 codes. Coordinate ascent ends at a coordinate-wise optimum,
    which is the global one in nearly every case."""
    O = np.random.default_rng(2).standard_normal((300, 4)).astype(np.float32)
    codes, _, _ = caq_encode(O, 2, ROUNDS)
    found = cosines(codes, 2, O)
    grid = np.array(list(itertools.product(range(4), repeat=4)))
    best = np.max(cosines(np.repeat(grid[None], 300, 0).reshape(-1, 4), 2,
                          np.repeat(O, len(grid), 0)).reshape(300, -1), axis=1)
    assert np.all(found <= best + 1e-6)
    assert np.mean(found >= best - 1e-6) >= 0.95
    assert np.mean(best - found) < 1e-3
    for i in range(300):  # no single-coordinate change improves the cosine
        neighbours = np.repeat(codes[i][None].astype(np.int64), 16, 0)
        neighbours[np.arange(16), np.arange(16) // 4] = np.arange(16) % 4
        assert cosines(neighbours, 2, np.repeat(O[i][None], 16, 0)).max() <= found[i] + 1e-6


def test_mean_cosine_table():
    """docs/algorithms.md §6.4 on D = 256 N(0, I). At B = 1 CAQ keeps the sign code, whose mean cosine is
    E||o||_1 / (sqrt(D) E||o||_2) = sqrt(2/pi) sqrt(D / (D - 1/2)) = 0.7987 (the table rounds to 0.796)."""
    O = np.random.default_rng(3).standard_normal((500, 256)).astype(np.float32)
    table = {1: 0.7987, 2: 0.938, 3: 0.982, 4: 0.995, 6: 0.9996}
    for bits, expected in table.items():
        assert cosines(caq_encode(O, bits, ROUNDS)[0], bits, O).mean() == pytest.approx(expected, abs=0.002)


def haar_pairs(o, q, n, rng):
    """(P o, P q) for n Haar-random rotations P, drawn directly: P o is ||o|| times a uniform unit
    vector u, and P q keeps its angle to P o with its orthogonal part uniform around u (a batched
    QR of n matrices would cost seconds and test the same thing)."""
    u = rng.standard_normal((n, len(o)))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w = rng.standard_normal((n, len(o)))
    w -= np.einsum("ij,ij->i", w, u)[:, None] * u
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    o, q = o.astype(np.float64), q.astype(np.float64)
    along = (o @ q) / np.linalg.norm(o)
    return ((np.linalg.norm(o) * u).astype(np.float32),
            (along * u + np.sqrt(q @ q - along ** 2) * w).astype(np.float32))


def test_unbiased_over_rotations():
    """Fixed anisotropic o and q in D = 128; the estimate's mean over 2000 rotations is <o, q>."""
    rng = np.random.default_rng(4)
    scale = 1 / np.sqrt(np.arange(1, 129))
    o = (rng.standard_normal(128) * scale).astype(np.float32)
    q = (o + rng.standard_normal(128) * scale).astype(np.float32)
    Po, Pq = haar_pairs(o, q, 2000, rng)
    truth = float(o.astype(np.float64) @ q)
    for bits in (1, 2, 4):
        codes, _, rescale = caq_encode(Po, bits, ROUNDS)
        est = rescale * np.einsum("ij,ij->i", grid_vectors(codes, bits), Pq)
        assert abs(est.mean() - truth) < 3 * est.std() / np.sqrt(len(est))
    # the reconstruction estimator <r, q> is biased low at one bit, which is why CAQ rescales
    codes, norms, rescale = caq_encode(Po, 1, ROUNDS)
    biased = np.einsum("ij,ij->i", reconstruct(codes, 1, norms, rescale), Pq)
    assert biased.mean() < truth - 5 * biased.std() / np.sqrt(len(biased))


def relative_ip_errors(codes_by_bits, rescale, O, Q):
    truth = O @ Q.T
    scale = np.linalg.norm(O, axis=1)[:, None] * np.linalg.norm(Q, axis=1)[None]
    return {b: np.mean(np.abs(estimate_ip(c, b, rescale[b], Q) - truth) / scale) for b, c in codes_by_bits.items()}


@pytest.fixture(scope="module")
def rotated():
    rng = np.random.default_rng(5)
    scale = 1 / np.sqrt(np.arange(1, 129))
    P = random_orthogonal(128, rng)
    O = (rng.standard_normal((400, 128)) * scale).astype(np.float32) @ P
    Q = (rng.standard_normal((20, 128)) * scale).astype(np.float32) @ P
    encoded = {b: caq_encode(O, b, ROUNDS) for b in range(1, 9)}
    return O, Q, encoded


def test_error_halves_per_bit(rotated):
    O, Q, encoded = rotated
    err = relative_ip_errors({b: e[0] for b, e in encoded.items()}, {b: e[2] for b, e in encoded.items()}, O, Q)
    for b in range(1, 8):
        assert 1.6 <= err[b] / err[b + 1] <= 2.6


def test_progressive_prefix(rotated):
    """The b leading planes of an 8-bit code, with the 8-bit rescale, are nearly as good as a native
    b-bit code (paper Fig. 12)."""
    O, Q, encoded = rotated
    native = relative_ip_errors({b: e[0] for b, e in encoded.items()}, {b: e[2] for b, e in encoded.items()}, O, Q)
    codes8, _, rescale8 = encoded[8]
    prefixes = relative_ip_errors({b: prefix(codes8, 8, b) for b in range(2, 8)},
                                  {b: rescale8 for b in range(2, 8)}, O, Q)
    for b in range(2, 8):
        assert prefixes[b] <= (1.3 if b >= 5 else 2.0) * native[b]


def test_reconstruction_is_the_projection_on_the_code(rotated):
    O, _, encoded = rotated
    codes, norms, rescale = encoded[4]
    R = reconstruct(codes, 4, norms, rescale)
    # the residual o - r is orthogonal to the code direction, and r is close to o
    g = grid_vectors(codes, 4)
    np.testing.assert_allclose(np.einsum("ij,ij->i", O - R, g) / np.linalg.norm(g, axis=1), 0,
                               atol=1e-4 * norms.max())
    assert np.mean(np.linalg.norm(O - R, axis=1) / norms) < 0.12
