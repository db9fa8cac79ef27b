"""Locally-adaptive vector quantization: ``LVQ{B}`` and two-level ``LVQ{B1}x{B2}`` (docs/algorithms.md §4).

Each residual x - c - μ (list centroid c, global mean μ of the residuals) is rounded to nearest on
its own min/max grid of 2^B levels; the grid's origin l and step Δ are two float16 constants
stored at the start of the row's codes. The second level re-quantizes the level-1 error in
[-Δ/2, Δ/2] with B2 more bits; it is only read to re-rank a shortlist.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidSpecError, InvalidVectorsError
from ..kernels.bits import pack_bits, unpack_bits
from ..kernels.config import readonly
from ..kernels.lvq import HEADER, lvq_scan
from .base import Codec

MAX_BITS = 16
#: largest finite float16: the per-vector constants must fit
F16_MAX = 65504.0


def _f16_down(v: np.ndarray) -> np.ndarray:
    """Largest float16 <= v."""
    h = v.astype(np.float16)
    return np.where(h.astype(np.float32) > v, np.nextafter(h, np.float16(-np.inf)), h)


def _f16_up(v: np.ndarray) -> np.ndarray:
    """Smallest float16 >= v."""
    h = v.astype(np.float16)
    return np.where(h.astype(np.float32) < v, np.nextafter(h, np.float16(np.inf)), h)


class LVQCodec(Codec):
    """Codes: 4 header bytes (l, Δ as float16), then D*B1 bits, then D*B2 bits; no factors."""

    def __init__(self, dim: int, metric: str, B1: int, B2: int = 0, *, seed: int = 0):
        super().__init__(dim, metric, seed=seed)
        self.B1, self.B2 = B1, B2
        self.mean = None
        # the shortlist factor only exists for two-level codes: name -> (type, low, high, default)
        self.search_params = {"reorder": (int, 1, 1000, 4)} if B2 else {}

    @classmethod
    def _from_match(cls, match, dim, metric, *, transform, seed):
        name = match.group(0)
        bits = [int(match.group(1))] + ([int(match.group(2))] if match.group(2) else [])
        for b in bits:
            if not 1 <= b <= MAX_BITS:
                raise InvalidSpecError(
                    f"{name}: LVQ bits per dimension must be in [1, {MAX_BITS}]; got {b}."
                )
        return cls(dim, metric, bits[0], bits[1] if len(bits) > 1 else 0, seed=seed)

    @property
    def spec(self) -> str:
        return f"LVQ{self.B1}" + (f"x{self.B2}" if self.B2 else "")

    def _level_bytes(self, B: int) -> int:
        return (self.dim * B + 7) // 8

    @property
    def code_size(self) -> int:
        return HEADER + self._level_bytes(self.B1) + (self._level_bytes(self.B2) if self.B2 else 0)

    @property
    def is_trained(self) -> bool:
        return self.mean is not None

    # --- training and encoding -------------------------------------------------------------
    def fit(self, X, centroids, nearest):
        self.mean = np.ascontiguousarray((X - centroids[nearest(X)]).mean(axis=0, dtype=np.float64), dtype=np.float32)
        return self

    def quantize(self, X, centroids, assign):
        """(origin l, step Δ, level-1 codes, level-2 codes or None) of the centred residuals."""
        self._check_trained("encode")
        R = np.asarray(X, np.float32) - centroids[assign] - self.mean
        if len(R) and np.abs(R).max() > F16_MAX / 2:
            raise InvalidVectorsError(
                f"{self.spec} stores each vector's range as float16: residual values must stay within "
                f"+-{F16_MAX / 2:g}; got {np.abs(R).max():g}."
            )
        levels = (1 << self.B1) - 1
        lo = _f16_down(R.min(axis=1))
        delta = _f16_up((R.max(axis=1) - lo.astype(np.float32)) / levels)
        l32, d32 = lo.astype(np.float32)[:, None], delta.astype(np.float32)[:, None]
        safe = np.where(d32 > 0, d32, 1)
        c1 = np.clip(np.rint((R - l32) / safe), 0, levels).astype(np.uint16)
        c2 = None
        if self.B2:
            levels2 = (1 << self.B2) - 1
            d2 = safe / levels2
            rho = R - (l32 + d32 * c1) + d32 / 2  # level-1 error shifted to [0, Δ]
            c2 = np.clip(np.rint(rho / d2), 0, levels2).astype(np.uint16)
        return lo, delta, c1, c2

    def encode(self, X, centroids, assign):
        lo, delta, c1, c2 = self.quantize(X, centroids, assign)
        header = np.stack([lo, delta], axis=1).astype("<f2").view(np.uint8)
        parts = [header, pack_bits(c1, self.B1)] + ([pack_bits(c2, self.B2)] if self.B2 else [])
        return np.ascontiguousarray(np.concatenate(parts, axis=1)), np.zeros((len(lo), 0), np.float32)

    def decode(self, codes, factors, centroids, assign, *, levels: int = 2):
        """Reconstructions from all stored levels (or only level 1 with ``levels=1``)."""
        self._check_trained("decode")
        codes = np.asarray(codes)
        header = np.ascontiguousarray(codes[:, :HEADER]).view("<f2").astype(np.float32)
        lo, delta = header[:, :1], header[:, 1:2]
        n1 = self._level_bytes(self.B1)
        x = lo + delta * unpack_bits(codes[:, HEADER:HEADER + n1], self.dim, self.B1).astype(np.float32)
        if self.B2 and levels == 2:
            c2 = unpack_bits(codes[:, HEADER + n1:], self.dim, self.B2).astype(np.float32)
            x += -delta / 2 + delta / ((1 << self.B2) - 1) * c2
        return (x + self.mean + centroids[assign]).astype(np.float32)

    # --- search ----------------------------------------------------------------------------
    def search(self, plan, centroids, lists, probe, k, live):
        kscan = k * plan.params.get("reorder", 1) if self.B2 else k
        return lvq_scan(plan.queries, readonly(centroids), readonly(self.mean), plan.lists(probe),
                        readonly(lists.offsets), readonly(lists.codes), self.B1, self.B2,
                        HEADER + self._level_bytes(self.B1), self.metric == "l2", live, kscan, k)

    # --- persistence -----------------------------------------------------------------------
    def state(self):
        return {"B1": self.B1, "B2": self.B2}, {"mean": self.mean}

    def load_state(self, meta, arrays):
        self.mean = np.ascontiguousarray(arrays["mean"], dtype=np.float32)
        return self
