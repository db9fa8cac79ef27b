"""The immutable pieces of a collection's snapshot: segments (raw or encoded rows with their ids
and payloads), parts (a segment and its tombstones), the state a search sees (model and parts),
and the binary-counter rule by which parts are merged as they accumulate."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

import numpy as np
import pyarrow as pa

from . import payload_index
from .errors import InvalidParameterError
from .filters import Bool
from .index import Index
from .ivf import InvertedLists
from .kernels.driver import ALL_ROWS, row_bitset

#: filters whose row bitsets a segment remembers (a repeated filter is evaluated once)
FILTER_CACHE = 64
#: a buffer chunk of at least this many floats (rows x dim) is not merged into newer ones: one
#: brute-force call over it costs far more than the call's overhead, so merging would only copy
#: it again (the binary counter's O(log n) copies of every row; persist merges the buffer once)
SETTLED_FLOATS = 1 << 21
#: buffer chunks from which settled ones are merged too (as a binary counter carries, in units of
#: this many chunks), so that searches, gets and upserts visit a bounded number of chunks
BUFFER_CHUNKS = 32
#: a filter leaving rows in at least this fraction of the lists probes as if it left them all:
#: restricting the probe costs more than the few empty lists it would skip
KEEP_ALL = 0.9


class Matches(NamedTuple):
    """The rows of a segment that pass a filter: their bitset, their row numbers, and which IVF
    lists hold any (a bool per list; None when nearly every list does, or for raw rows)."""

    bits: np.ndarray
    rows: np.ndarray
    lists: np.ndarray | None


@dataclass(frozen=True, eq=False)
class Segment:
    """Immutable rows: raw vectors (before training, and the buffer) or encoded IVF lists.

    ``id_order`` sorts the ids, so ``find`` is a binary search on (possibly mapped) arrays and
    opening needs no index build. ``columns`` are the payload index columns
    (`annvq.payload_index`), stored in their own file (``columns_file``) so that declaring an
    index rewrites only them. ``name`` is the file once persisted, None while in memory.
    """

    ids: np.ndarray
    id_order: np.ndarray
    vectors: np.ndarray | None
    lists: InvertedLists | None
    payloads: pa.LargeStringArray | None
    name: str | None = None
    columns: Mapping[str, pa.Array] = field(default_factory=dict)
    columns_file: str | None = None
    _matches: dict = field(default_factory=dict, repr=False)
    _matches_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def rows(self) -> int:
        return len(self.ids)

    @classmethod
    def raw(cls, ids, vectors, payloads, schema: Mapping[str, str]) -> "Segment":
        """Raw rows; the payload index columns of ``schema`` are built from the payloads (a
        payload that does not fit is refused here, before anything is stored)."""
        return cls(ids, np.argsort(ids, kind="stable"), vectors, None, payloads,
                   columns=payload_index.columns(payloads, ids, schema))

    @classmethod
    def encoded(cls, lists: InvertedLists, src_ids: np.ndarray, src_payloads, schema: Mapping[str, str]) -> "Segment":
        """Wrap lists built from rows given as (src_ids, src_payloads), re-ordering the payloads
        and building the payload index columns from them."""
        order = np.argsort(lists.ids, kind="stable")
        payloads = None
        if src_payloads is not None:
            src_order = np.argsort(src_ids, kind="stable")
            rows = src_order[np.searchsorted(src_ids, lists.ids, sorter=src_order)]
            payloads = src_payloads.take(pa.array(rows))
        return cls(lists.ids, order, lists.vectors, lists, payloads,
                   columns=payload_index.columns(payloads, lists.ids, schema))

    def with_columns(self, columns: Mapping[str, pa.Array], columns_file: str | None = None) -> "Segment":
        """The same rows with other payload index columns (a new index declared or dropped), and
        an empty filter cache: not `dataclasses.replace`, which would share the old one."""
        return Segment(self.ids, self.id_order, self.vectors, self.lists, self.payloads, self.name,
                       columns, columns_file)

    def matching(self, pred: Bool) -> Matches:
        """The rows that pass ``pred``, remembered for the last FILTER_CACHE filters: the segment
        is immutable, so a repeated filter costs a dict lookup."""
        found = self._matches.get(pred)
        if found is None:
            mask = pred.mask(self.columns, self.ids)
            keep = None
            if self.lists is not None:
                before = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
                keep = np.diff(before[self.lists.offsets]) > 0
                keep = None if keep.sum() >= KEEP_ALL * len(keep) else keep
            found = Matches(row_bitset(mask), np.flatnonzero(mask), keep)
            with self._matches_lock:
                if len(self._matches) >= FILTER_CACHE:
                    self._matches.pop(next(iter(self._matches)))
                self._matches[pred] = found
        return found

    def find(self, ids: np.ndarray) -> np.ndarray:
        """Row of every id, -1 where absent (ids are unique within a segment)."""
        if self.rows == 0:
            return np.full(len(ids), -1, np.int64)
        pos = np.minimum(np.searchsorted(self.ids, ids, sorter=self.id_order), self.rows - 1)
        rows = self.id_order[pos]
        return np.where(self.ids[rows] == ids, rows, -1)

    def arrays(self) -> dict:
        out = {"ids": self.ids, "id_order": self.id_order}
        if self.vectors is not None:
            out["vectors"] = self.vectors
        if self.lists is not None:
            out.update(offsets=self.lists.offsets, codes=self.lists.codes, factors=self.lists.factors)
        if self.payloads is not None:
            out["payloads"] = self.payloads
        return out

    @classmethod
    def from_arrays(cls, a: dict, name: str) -> "Segment":
        lists = None
        if "codes" in a:
            lists = InvertedLists(a["offsets"], a["ids"], a["codes"], a["factors"], a.get("vectors"))
        return cls(a["ids"], a["id_order"], a.get("vectors"), lists, a.get("payloads"), name)


@dataclass(frozen=True, eq=False)
class Part:
    """A segment and its tombstones (bool mask, copied on write; None when nothing is deleted)
    with the bitset of its live rows that scans skip the others by (empty: all live)."""

    segment: Segment
    deleted: np.ndarray | None = None
    n_deleted: int = 0
    live_bits: np.ndarray = field(default_factory=lambda: ALL_ROWS)

    @property
    def live(self) -> int:
        return self.segment.rows - self.n_deleted

    def live_rows(self) -> np.ndarray:
        return np.arange(self.segment.rows) if self.deleted is None else np.flatnonzero(~self.deleted)

    def find_live(self, ids: np.ndarray) -> np.ndarray:
        rows = self.segment.find(ids)
        if self.deleted is not None:
            rows[(rows >= 0) & self.deleted[np.maximum(rows, 0)]] = -1
        return rows

    def kill(self, rows: np.ndarray) -> "Part":
        deleted = np.zeros(self.segment.rows, bool) if self.deleted is None else self.deleted.copy()
        deleted[rows] = True
        return Part(self.segment, deleted, int(deleted.sum()), row_bitset(~deleted))

    def allowed(self, pred: Bool | None) -> tuple[np.ndarray, int]:
        """(bitset, count) of the live rows that pass ``pred`` (every live row when None); the
        bitset is empty when every row is allowed, as the scans read it."""
        if pred is None:
            return self.live_bits, self.live
        found = self.segment.matching(pred)
        if not len(self.live_bits):  # no tombstones: the count is at hand (a popcount costs ~8 us)
            return found.bits, len(found.rows)
        bits = found.bits & self.live_bits
        return bits, int(np.bitwise_count(bits).sum())

    def allowed_rows(self, pred: Bool | None) -> np.ndarray:
        """The row numbers of the live rows that pass ``pred``, ascending."""
        if pred is None:
            return self.live_rows()
        rows = self.segment.matching(pred).rows
        return rows if self.deleted is None else rows[~self.deleted[rows]]


@dataclass(frozen=True)
class State:
    """One consistent snapshot: what a search sees from start to end."""

    model: Index | None
    parts: tuple[Part, ...]  # persisted segments first, then buffer chunks (name None)
    manifest: dict
    dirty: bool = False
    mapped_bytes: int = 0

    @property
    def count(self) -> int:
        return sum(p.live for p in self.parts)

    @property
    def persisted(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.segment.name is not None)

    @property
    def buffer(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.segment.name is None)


def encode_payloads(payloads, n: int) -> pa.LargeStringArray | None:
    """JSON strings (null for None) for n points; refuses non-dicts and non-JSON values."""
    if payloads is None:
        return None
    if isinstance(payloads, (dict, str, bytes)) or not hasattr(payloads, "__len__") or len(payloads) != n:
        raise InvalidParameterError(
            f"payloads must be a list of {n} dicts (or None); got {type(payloads).__name__}.")
    texts = []
    for i, p in enumerate(payloads):
        if p is not None and not isinstance(p, dict):
            raise InvalidParameterError(f"payloads[{i}] must be a dict or None; got {type(p).__name__}.")
        try:
            texts.append(None if p is None else json.dumps(p, allow_nan=False, separators=(",", ":")))
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"payloads[{i}] is not JSON-serialisable: {exc}.") from None
    return None if all(t is None for t in texts) else pa.array(texts, pa.large_string())


def concat_payloads(pieces: list[tuple[pa.Array | None, np.ndarray]]) -> pa.LargeStringArray | None:
    """Payloads of selected rows of several segments, nulls where a segment has none."""
    if all(p is None for p, _ in pieces):
        return None
    return pa.concat_arrays([pa.nulls(len(rows), pa.large_string()) if p is None else p.take(pa.array(rows))
                             for p, rows in pieces])


def carry(older: list[Part], newest: list[Part], *, settled: int | None = None) -> tuple[list[Part], list[Part]]:
    """Move the last of ``older`` into ``newest`` while ``newest`` holds at least as many live
    rows, as a binary counter carries: (what stays, what to merge). Applied on every append, n
    appends leave O(log n) parts and copy each row O(log n) times. A part of ``settled`` live
    rows or more is never moved (nor is any before it)."""
    rows = sum(p.live for p in newest)
    while older and rows >= older[-1].live and (settled is None or older[-1].live < settled):
        rows += older[-1].live
        newest.insert(0, older.pop())
    return older, newest
