"""Index spec strings, read left to right as faiss's index_factory does.

    [TRANSFORM,][IVF{nlist},]CODEC[,Rerank]

``"Flat"``, ``"IVF1024,Flat"``, ``"IVF1024,SAQ4"``, ``"OPQ98,IVF1024,PQ98x8,Rerank"``.
Build-time choices live here; search-time knobs (nprobe, rerank factor) do not.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .errors import InvalidSpecError

_IVF = re.compile(r"IVF(\d+)")
_TRANSFORM = re.compile(r"OPQ\d+(_\d+)?")
_RERANK = ("Rerank",)


@dataclass(frozen=True)
class IndexSpec:
    codec: str
    nlist: int | None = None
    transform: str | None = None
    rerank: bool = False

    def __str__(self) -> str:
        parts = [self.transform] if self.transform else []
        if self.nlist is not None:
            parts.append(f"IVF{self.nlist}")
        parts.append(self.codec)
        if self.rerank:
            parts.append("Rerank")
        return ",".join(parts)


@functools.lru_cache(maxsize=256)  # specs are few and the result immutable; collections ask per search
def parse_spec(spec: str) -> IndexSpec:
    """Split a spec string into its components; the codec part is validated by its codec."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidSpecError(f"An index spec must be a non-empty string like 'IVF1024,SAQ4'; got {spec!r}.")
    parts = [p.strip() for p in spec.split(",")]
    transform = nlist = None
    rerank = False
    if parts and _TRANSFORM.fullmatch(parts[0]):
        transform = parts.pop(0)
    if parts and parts[-1] in _RERANK:
        rerank = True
        parts.pop()
    if parts and (m := _IVF.fullmatch(parts[0])):
        nlist = int(m.group(1))
        if nlist < 1:
            raise InvalidSpecError(f"IVF needs at least one list; got {parts[0]!r} in {spec!r}.")
        parts.pop(0)
    if len(parts) != 1 or not parts[0]:
        raise InvalidSpecError(
            f"Cannot parse index spec {spec!r}: expected [OPQ{{M}},][IVF{{nlist}},]CODEC[,Rerank], "
            "e.g. 'IVF1024,SAQ4'."
        )
    return IndexSpec(codec=parts[0], nlist=nlist, transform=transform, rerank=rerank)
