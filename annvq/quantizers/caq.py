"""``CAQ{B}``: SAQ's machinery with one segment and no PCA, the Extended-RaBitQ-equivalent baseline
(docs/algorithms.md §6). The code adjustment itself is in code_adjustment.py."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError
from ..linalg import random_orthogonal
from ..validation import check_int
from .allocation import MAX_SEGMENT_BITS
from .saq import SAQCodec


class CAQCodec(SAQCodec):
    """``CAQ{B}``: one segment of D_pad dimensions at B bits after one random rotation, no PCA."""

    @classmethod
    def _from_match(cls, match, dim, metric, *, transform, seed):
        check_int(dim, "dim", match.group(0))
        bits = int(match.group(1))
        if not 1 <= bits <= MAX_SEGMENT_BITS:
            raise InvalidParameterError(
                f"The 'bits' parameter of CAQ must be an int in [1, {MAX_SEGMENT_BITS}]. Got {bits}."
            )
        return cls(dim, metric, bits=bits, seed=seed)

    @property
    def spec(self) -> str:
        return f"CAQ{self.bits:g}"

    def fit(self, X, centroids, nearest):
        rotation = random_orthogonal(self.padded_dim, np.random.default_rng(self.seed))
        self.origin_ = np.asarray(X, np.float32).mean(axis=0)
        self._set_model([(self.padded_dim, int(self.bits))], rotation[:self.dim])
        return self
