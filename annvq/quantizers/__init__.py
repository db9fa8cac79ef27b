"""Codecs, one module each, found by the spec's codec part through this registry."""

from __future__ import annotations

import importlib
import re

from ..errors import InvalidSpecError
from .base import Codec

# Spec pattern -> "module:Class". Modules are imported on first use, so a codec's kernels are
# compiled only when it is used.
CODECS: list[tuple[str, str]] = [
    (r"Flat", "annvq.quantizers.flat:FlatCodec"),
    (r"SAQ(\d+(?:\.\d+)?)", "annvq.quantizers.saq:SAQCodec"),
    (r"CAQ(\d+)", "annvq.quantizers.caq:CAQCodec"),
    (r"PQ(\d+)(?:x(\d+)(fs)?)?", "annvq.quantizers.pq:PQCodec"),
    (r"LVQ(\d+)(?:x(\d+))?", "annvq.quantizers.lvq:LVQCodec"),
]


def make_codec(name: str, dim: int, metric: str, *, transform: str | None = None, seed: int = 0) -> Codec:
    """The codec for a spec's codec part, e.g. ``"SAQ4"``, ``"PQ98x8"``, ``"Flat"``."""
    for pattern, target in CODECS:
        if m := re.fullmatch(pattern, name):
            module, cls = target.split(":")
            codec_cls = getattr(importlib.import_module(module), cls)
            return codec_cls.from_spec(m, dim, metric, transform=transform, seed=seed)
    raise InvalidSpecError(
        f"Unknown codec {name!r}. Known codecs: {', '.join(p for p, _ in CODECS)}."
    )
