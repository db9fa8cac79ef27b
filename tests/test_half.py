"""kernels/half.py: float16 bits widened exactly, and a product over them equal to float64's."""

import numba
import numpy as np

from annvq.kernels.flat import small_matmul
from annvq.kernels.half import as_half_bits, from_half_bits, widen


@numba.njit
def widen_all(bits):
    out = np.empty(bits.shape[0], np.float32)
    for i in range(bits.shape[0]):
        out[i] = widen(bits[i])
    return out


def test_every_finite_float16_widens_to_its_value():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    finite = np.isfinite(bits.view(np.float16))
    got = widen_all(bits[finite])
    np.testing.assert_array_equal(got, bits[finite].view(np.float16).astype(np.float32))  # subnormals too


def test_small_matmul_over_half_bits_is_the_product_by_the_rounded_matrix():
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((98, 130)) * 0.05).astype(np.float32)
    X = rng.standard_normal((4, 98)).astype(np.float32)
    X[:, ::3] = 0  # zero coordinates skip their row of W: 65 are left, 4 at a time and 1 alone
    X[3] = 0
    W16 = as_half_bits(W)
    rounded = from_half_bits(W16)
    assert W16.dtype == np.uint16 and np.abs(rounded - W).max() <= np.abs(W).max() * 2.0 ** -11
    np.testing.assert_allclose(small_matmul(X, W16), X.astype(np.float64) @ rounded, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small_matmul(X, W), X.astype(np.float64) @ W, rtol=1e-5, atol=1e-6)
