"""A collection search's answer: the best k hits of every query, and where each one lives.

Each part (segment and its tombstones) is scanned into raw scores ("smaller is better", as
`plan.SearchPlan` describes); `Hits.merge` picks the best k across parts on those scores and
converts them to reported distances once. A hit keeps its (part, row), so payloads and vectors
are read from the snapshot that was searched, without a second lookup by id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .kernels.config import readonly
from .kernels.driver import WORST, merged_answers
from .plan import SearchPlan
from .segments import Part


@dataclass(frozen=True, eq=False)
class Hits:
    """distances and ids (nq, k) best first (id -1, distance +-inf: no result); part (nq, k)
    indexes ``parts``, row (nq, k) is the row within that part's segment; nprobe (nq,) the lists
    each query read; strategy how the parts were scanned ("ivf", "ivf-raw", "flat",
    "exact": `annvq.part_search`; "+"-joined)."""

    distances: np.ndarray
    ids: np.ndarray
    part: np.ndarray
    row: np.ndarray
    parts: tuple[Part, ...]
    nprobe: np.ndarray
    strategy: str = ""

    @property
    def found(self) -> np.ndarray:
        """(nq,) how many results each query has (k unless fewer points match)."""
        return (self.ids >= 0).sum(axis=1)

    def put(self, queries: np.ndarray, other: "Hits") -> None:
        """Replace the answers of ``queries`` by ``other``'s (a search of those queries again
        over the same parts, with more lists)."""
        for name in ("distances", "ids", "part", "row", "nprobe"):
            getattr(self, name)[queries] = getattr(other, name)

    @classmethod
    def merge(cls, plan: SearchPlan, parts: tuple[Part, ...], found: list[tuple[np.ndarray, np.ndarray]],
              strategy: str = "") -> "Hits":
        """The best ``plan.k`` of the parts' (raw scores, rows), ties kept in part order."""
        shape, nprobe = (plan.nq, plan.k), np.full(plan.nq, plan.nprobe)
        if len(found) == 1:  # already the best k, in order; part 0, or -1 (rows >> 63) where none
            scores, rows = found[0]
            return cls(*plan.answers(scores, rows, readonly(parts[0].segment.ids)), rows >> 63, rows,
                       parts, nprobe, strategy)
        if not found:
            scores, rows = np.full(shape, WORST, np.float32), np.full(shape, -1, np.int64)
            return cls(plan.report(scores, rows), rows.copy(), rows.copy(), rows, parts, nprobe, strategy)
        distances, ids, rows, part = merged_answers(found, [readonly(p.segment.ids) for p in parts], plan.k,
                                                    plan.metric == "l2")
        return cls(distances, ids, part, rows, parts, nprobe, strategy)

    def _located(self, qi: int):
        """(part, row) of query qi's hits, padding dropped."""
        keep = self.part[qi] >= 0
        return zip(self.part[qi][keep].tolist(), self.row[qi][keep].tolist())

    def payloads(self, qi: int) -> list[dict | None]:
        """The payload of each of query qi's hits (None where a point has none)."""
        out = []
        for i, r in self._located(qi):
            texts = self.parts[i].segment.payloads
            text = None if texts is None else texts[r].as_py()
            out.append(None if text is None else json.loads(text))
        return out

    def vectors(self, qi: int) -> list[np.ndarray | None]:
        """The stored vector of each of query qi's hits (None where raw vectors are not kept)."""
        out = []
        for i, r in self._located(qi):
            vectors = self.parts[i].segment.vectors
            out.append(None if vectors is None else np.array(vectors[r]))
        return out
