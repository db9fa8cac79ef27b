"""Collection: a durable set of points (int64 id, vector, JSON payload) searchable by any spec.

    >>> col = Collection.create("db/items", 128, metric="l2", spec="IVF1024,SAQ4")
    >>> col.upsert(ids, X, payloads)          # visible at once
    >>> col.persist()                         # durable when it returns
    >>> D, I = col.search(Q, k=10, nprobe=16)

A collection is a trained model plus immutable segments plus an in-memory buffer of recent
upserts (docs/format.md). Deletes and overwritten rows are tombstones: a per-segment mask, written
at persist and dropped by compact. Before training (fewer than ``train_threshold`` points) the
segments hold raw vectors and every search is exact. Each write builds a new immutable snapshot
and swaps one reference, so searches never lock and always see one consistent state.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from dataclasses import dataclass, replace

import numpy as np
import orjson

from . import part_search, payload_index
from .errors import (CollectionClosedError, CollectionExistsError, CollectionNotFoundError,
                     InvalidParameterError, ReadOnlyError)
from .filters import Bool, parse_filter
from .hits import Hits
from .index import Index
from .ivf import InvertedLists
from .kernels.config import readonly
from .plan import QueryCache, SearchPlan
from .segments import BUFFER_CHUNKS, SETTLED_FLOATS, Part, Segment, State, carry, concat_payloads, encode_payloads
from .spec import parse_spec
from .storage import layout, manifest, snapshot
from .storage.lock import WriterLock
from .validation import check_ids, check_int, check_metric, metric_vectors

log = logging.getLogger(__name__)

#: rows sampled to train the model when no sample is given (k-means itself uses 50 per list)
TRAIN_SAMPLE = 200_000
#: committed versions kept on disk for readers that still map older files
KEEP_VERSIONS = 3
#: parsed filters a collection remembers (all are forgotten when it has this many)
PARSED_FILTERS = 256


def default_train_threshold(nlist: int) -> int:
    """Points needed before training: faiss's 39 per centroid (rounded to 40), at least 1000."""
    return max(1000, 40 * nlist)


@dataclass(frozen=True)
class Point:
    """One stored point; ``vector`` is None when not requested or not stored, ``payload`` when absent."""

    id: int
    vector: np.ndarray | None = None
    payload: dict | None = None


def _writes(method):
    """Run a write under the writer lock, refusing it on a read-only or closed collection."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.read_only:
            raise ReadOnlyError(f"Collection {self.path} is open read-only; {method.__name__}() is refused.")
        with self._write_lock:
            self._check_open()
            return method(self, *args, **kwargs)

    return wrapper


class Collection:
    """A collection on local disk: one writer (process and object), many concurrent searches."""

    def __init__(self, path: str, config: dict, state: State, *, read_only: bool, lock: WriterLock | None,
                 keep_versions: int = KEEP_VERSIONS):
        self.path = path
        self._config = config
        self._state: State | None = state
        self.read_only = read_only
        self._lock = lock
        self._write_lock = threading.RLock()
        self.keep_versions = keep_versions
        self._parsed: dict[tuple, Bool | None] = {}  # `_predicate`'s, by filter text and payload indexes
        # validates searches before training (the trained model does it after)
        self._blank = Index(config["dim"], config["spec"], config["metric"],
                            store_vectors=config["store_vectors"], seed=config["seed"])

    # --- life cycle ----------------------------------------------------------------------
    @classmethod
    def create(cls, path, dim: int, *, metric: str = "l2", spec: str = "IVF1024,SAQ4",
               store_vectors: bool = True, train_threshold: int | None = None, seed: int = 0,
               payload_indexes: dict | None = None, keep_versions: int = KEEP_VERSIONS) -> "Collection":
        """A new empty collection at ``path`` (created if needed); CollectionExistsError if one is there.

        ``payload_indexes`` ({field: kind}, kinds in `payload_index.KINDS`) are the payload fields
        searches can filter on (more can be declared later with `create_payload_index`).
        ``keep_versions`` committed versions stay on disk for readers still mapping older files.
        """
        path = os.path.abspath(os.fspath(path))
        dim = check_int(dim, "dim", "Collection.create")
        check_metric(metric)
        Index(dim, spec, metric, seed=seed)  # validates the spec and its codec now
        nlist = parse_spec(spec).nlist or 1
        threshold = default_train_threshold(nlist) if train_threshold is None else check_int(
            train_threshold, "train_threshold", "Collection.create", max(nlist, 1))
        keep_versions = check_int(keep_versions, "keep_versions", "Collection.create")
        schema = payload_index.check_schema(payload_indexes)
        if os.path.exists(path) and not os.path.isdir(path):
            raise CollectionExistsError(f"{path} exists and is not a directory.")
        if os.path.isdir(path) and (manifest.read_current(path) or manifest.manifest_versions(path)):
            raise CollectionExistsError(f"A collection already exists at {path}.")
        os.makedirs(path, exist_ok=True)
        lock = WriterLock(path)
        config = {"dim": dim, "metric": metric, "spec": str(parse_spec(spec)),
                  "store_vectors": bool(store_vectors), "train_threshold": threshold, "seed": seed,
                  "payload_indexes": schema}
        try:
            body = manifest.commit(path, layout.empty_body(config))
        except BaseException:
            lock.release()
            raise
        return cls(path, config, State(None, (), body), read_only=False, lock=lock, keep_versions=keep_versions)

    @classmethod
    def open(cls, path, *, read_only: bool = False, keep_versions: int = KEEP_VERSIONS) -> "Collection":
        """Open an existing collection; files are memory-mapped, nothing else is read eagerly."""
        path = os.path.abspath(os.fspath(path))
        keep_versions = check_int(keep_versions, "keep_versions", "Collection.open")
        if not os.path.isdir(path) or not (manifest.read_current(path) or manifest.manifest_versions(path)):
            raise CollectionNotFoundError(f"No collection at {path} (no CURRENT or MANIFEST file).")
        lock = None if read_only else WriterLock(path)
        try:
            state = layout.read_state(path)
            if lock is not None:
                manifest.collect_garbage(path, keep_versions)  # stray temp files of a crashed writer
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return cls(path, state.manifest["collection"], state, read_only=read_only, lock=lock,
                   keep_versions=keep_versions)

    def close(self) -> None:
        """Release the writer lock and the mapped files; unpersisted changes are dropped (logged)."""
        with self._write_lock:
            if self._state is not None and self._state.dirty:
                log.warning("Closing %s with unpersisted changes: they are dropped (call persist()).",
                            self.path)
            self._state = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._state is None else f"count={self.count}"
        return f"Collection({self.path!r}, dim={self.dim}, spec={self.spec!r}, metric={self.metric!r}, {state})"

    # --- description -----------------------------------------------------------------------
    def _check_open(self) -> State:
        state = self._state
        if state is None:
            raise CollectionClosedError(f"Collection {self.path} is closed.")
        return state

    dim = property(lambda self: self._config["dim"])
    metric = property(lambda self: self._config["metric"])
    spec = property(lambda self: self._config["spec"])
    store_vectors = property(lambda self: self._config["store_vectors"])
    train_threshold = property(lambda self: self._config["train_threshold"])

    @property
    def payload_indexes(self) -> dict[str, str]:
        """The indexed payload fields, {field: kind}: what searches can filter on."""
        return dict(layout.payload_indexes(self._config))

    @property
    def is_trained(self) -> bool:
        return self._check_open().model is not None

    @property
    def count(self) -> int:
        """Live points, persisted or not."""
        return self._check_open().count

    @property
    def nlist(self) -> int:
        return parse_spec(self.spec).nlist or 1

    # --- input -----------------------------------------------------------------------------
    def _vectors(self, X, name: str) -> np.ndarray:
        return metric_vectors(X, self.dim, self.metric, name=name)

    # --- writes ----------------------------------------------------------------------------
    @_writes
    def upsert(self, ids, vectors, payloads=None) -> int:
        """Insert or replace points, all or none; visible to search at once, durable after persist()."""
        X = self._vectors(vectors, "vectors")
        ids = check_ids(ids, len(X))
        texts = encode_payloads(payloads, len(X))
        if np.may_share_memory(X, vectors):  # the buffer must not change when the caller's array does
            X = X.copy()
        ids = ids.copy()
        state = self._state
        parts = self._kill(state.parts, ids)[0]
        # Every buffer chunk is brute-forced by a call of its own in each search: the new chunk
        # takes in the small ones before it as a binary counter carries (see `carry`); chunks of
        # SETTLED_FLOATS stay as they are until persist, or until there are BUFFER_CHUNKS.
        persisted = [p for p in parts if p.segment.name is not None]
        buffer = [p for p in parts if p.segment.name is None]
        fresh = Part(Segment.raw(ids, X, texts, self.payload_indexes))
        settled = max(1, SETTLED_FLOATS // self.dim) if len(buffer) < BUFFER_CHUNKS else None
        chunks, merged = carry(buffer, [fresh], settled=settled)
        new = merged[0] if len(merged) == 1 else Part(self._merge(None, merged))
        self._state = replace(state, parts=(*persisted, *chunks, new), dirty=True)
        return len(ids)

    @_writes
    def delete(self, ids) -> int:
        """Delete points by id; returns how many existed. Durable after persist()."""
        ids = np.unique(check_ids(ids, unique=False))
        state = self._state
        parts, killed = self._kill(state.parts, ids)
        if killed:
            self._state = replace(state, parts=parts, dirty=True)
        return killed

    @staticmethod
    def _kill(parts: tuple[Part, ...], ids: np.ndarray) -> tuple[tuple[Part, ...], int]:
        """Tombstone the live rows of these ids; in-memory chunks left empty are dropped."""
        out, killed = [], 0
        for part in parts:
            rows = part.find_live(ids)
            rows = rows[rows >= 0]
            if len(rows):
                part = part.kill(rows)
                killed += len(rows)
            if part.live or part.segment.name is not None:
                out.append(part)
        return tuple(out), killed

    @_writes
    def train(self, sample=None, *, centroids=None) -> None:
        """Train the model on ``sample`` (or up to TRAIN_SAMPLE stored points), re-encode every
        point and persist: durable when it returns. ``centroids`` (nlist, dim) skips k-means
        (`Index.train`), e.g. to share one partition with a peer in a benchmark."""
        state = self._state
        ids, vectors, payloads = self._gather(state)
        if sample is None:
            X = vectors
            if len(X) > TRAIN_SAMPLE:
                rng = np.random.default_rng(self._config["seed"])
                X = X[np.sort(rng.choice(len(X), TRAIN_SAMPLE, replace=False))]
        else:
            X = self._vectors(sample, "sample")
        if not len(X):
            raise InvalidParameterError("Cannot train: the collection is empty and no sample was given.")
        model = Index(self.dim, self.spec, self.metric, store_vectors=self.store_vectors,
                      seed=self._config["seed"]).train(X, centroids=centroids)
        self._install(state, model, ids, vectors, payloads)

    @_writes
    def adopt_model(self, model: Index) -> None:
        """Use ``model``, trained elsewhere for this dim, spec, metric and store_vectors, instead
        of training (one model shared by every shard of `annvq.distributed`): every point is
        re-encoded and persisted; durable when it returns."""
        blank = self._blank
        want = (blank.dim, str(blank.spec), blank.metric, blank.store_vectors)
        got = (model.dim, str(model.spec), model.metric, model.store_vectors)
        if not model.is_trained or got != want:
            raise InvalidParameterError(
                f"Cannot adopt a model with (dim, spec, metric, store_vectors) = {got} "
                f"(trained: {model.is_trained}): collection {self.path} needs a trained {want}.")
        state = self._state
        self._install(state, model, *self._gather(state))

    @_writes
    def add_encoded(self, lists: InvertedLists) -> int:
        """Commit points encoded elsewhere by this collection's model (`Index.encode_lists` in a
        distributed build's Ray tasks) as one new segment, replacing points with the same ids;
        the buffer is persisted first. Durable on return."""
        state = self._state
        model = state.model
        if model is None:
            raise InvalidParameterError(f"Collection {self.path} has no model yet: encoded points need one.")
        want = (model.nlist, model.codec.code_size, model.codec.n_factors, self.store_vectors)
        got = (lists.nlist, lists.codes.shape[1], lists.factors.shape[1], lists.vectors is not None)
        if got != want:
            raise InvalidParameterError(
                f"Encoded points with (lists, code bytes, factors, vectors) = {got} do not fit collection "
                f"{self.path}: its model encodes {want}.")
        check_ids(lists.ids, lists.ntotal)
        self.persist(train=False)
        state = self._state
        new = Segment.encoded(lists, lists.ids, None, self.payload_indexes)
        self._commit(replace(state, parts=self._kill(state.parts, lists.ids)[0]), [new])
        return lists.ntotal

    def _install(self, state: State, model: Index, ids, vectors, payloads) -> None:
        """Commit ``model`` with every live point encoded by it into one segment."""
        schema = self.payload_indexes
        new = [Segment.encoded(model.encode_lists(vectors, ids), ids, payloads, schema)] if len(ids) else []
        self._commit(replace(state, model=model, parts=()), new, new_model=True)

    def _live_vectors(self, state: State) -> np.ndarray:
        pieces = []
        for part in state.parts:
            if part.segment.vectors is None:
                raise InvalidParameterError(
                    "Retraining needs the raw vectors: create the collection with store_vectors=True, "
                    "or pass a sample and re-insert the points."
                )
            pieces.append(part.segment.vectors[part.live_rows()])
        return np.concatenate(pieces) if pieces else np.zeros((0, self.dim), np.float32)

    def _gather(self, state: State):
        """(ids, raw vectors, payloads) of every live point, segments then buffer."""
        rows = [p.live_rows() for p in state.parts]
        ids = np.concatenate([p.segment.ids[r] for p, r in zip(state.parts, rows)] or [np.zeros(0, np.int64)])
        payloads = concat_payloads([(p.segment.payloads, r) for p, r in zip(state.parts, rows)])
        return ids, self._live_vectors(state), payloads

    @_writes
    def persist(self, *, train: bool = True) -> None:
        """Write the buffer as a new segment and the tombstones, then commit; durable on return.

        The new segment absorbs the newest segments no larger than it. Trains first once
        ``count >= train_threshold`` (training persists everything), unless ``train=False``:
        then untrained points are written raw and training waits for a later persist, so that a
        shutdown takes the time of a write, not of a training.
        """
        state = self._state
        if train and state.model is None and state.count >= self.train_threshold:
            return self.train()
        if not state.dirty:
            return
        merged = [p for p in state.buffer if p.live]
        if not merged:
            return self._commit(replace(state, parts=state.persisted), [])
        stay, merged = carry(list(state.persisted), merged)
        self._commit(replace(state, parts=tuple(stay)), [self._merge(state.model, merged)])

    @_writes
    def compact(self) -> None:
        """Merge every segment and the buffer into one segment without tombstones; durable on return."""
        state = self._state
        if state.model is None and state.count >= self.train_threshold:
            return self.train()
        if len(state.parts) <= 1 and not any(p.n_deleted for p in state.parts) and not state.dirty:
            return  # already one segment without tombstones
        live = [p for p in state.parts if p.live]
        new = [self._merge(state.model, live)] if live else []
        self._commit(replace(state, parts=()), new)

    def _merge(self, model: Index | None, parts: list[Part]) -> Segment:
        """One segment holding the live rows of ``parts``: encoded lists once trained, else raw."""
        rows = [p.live_rows() for p in parts]
        ids = np.concatenate([p.segment.ids[r] for p, r in zip(parts, rows)])
        payloads = concat_payloads([(p.segment.payloads, r) for p, r in zip(parts, rows)])
        if model is None:  # a part without tombstones is concatenated as is, not gathered first
            vectors = np.concatenate([p.segment.vectors if p.deleted is None else p.segment.vectors[r]
                                      for p, r in zip(parts, rows)])
            return Segment.raw(ids, vectors, payloads, self.payload_indexes)
        pieces = []
        for part, r in zip(parts, rows):
            seg = part.segment
            if seg.lists is not None:
                keep = np.zeros(seg.rows, bool)
                keep[r] = True
                pieces.append(seg.lists.select(keep))
            else:
                pieces.append(model.encode_lists(seg.vectors[r], seg.ids[r]))
        return Segment.encoded(functools.reduce(InvertedLists.merge, pieces), ids, payloads, self.payload_indexes)

    def _commit(self, state: State, new: list[Segment], *, new_model: bool = False,
                config: dict | None = None) -> None:
        """Write the new segments (and model, tombstones), commit a manifest, map the new files.

        ``state.parts`` holds the persisted parts that stay; the buffer is replaced by ``new``.
        A new ``config`` (other payload indexes) rewrites the payload index file of every kept
        part. On any failure the in-memory state and the committed files are left as they were.
        """
        config = config or self._config
        schema = layout.payload_indexes(config)
        reindexed = [p.segment for p in state.parts] if config is not self._config else []
        written = layout.write_files(self.path, config, state.manifest["next_seq"],
                                     model=state.model if new_model else None, segments=new,
                                     reindexed=reindexed, dead=[p for p in state.parts if p.n_deleted])
        body = layout.next_body(state.manifest, config, state.parts, written)
        body = manifest.commit(self.path, body)
        self._config = config
        # Map what was just written, so the buffer's memory is released and reads are zero-copy.
        model = layout.read_model(self.path, written.model) if new_model else state.model
        entries = {e["file"]: e for e in body["segments"]}
        kept = [replace(p, segment=layout.read_segment(self.path, entries[p.segment.name], schema))
                if p.segment.name in written.columns else p for p in state.parts]
        mapped = [*kept, *(Part(layout.read_segment(self.path, e, schema)) for e in written.segments)]
        self._state = State(model, tuple(mapped), body, dirty=False, mapped_bytes=layout.files_bytes(body))
        try:
            manifest.collect_garbage(self.path, self.keep_versions)
        except OSError as exc:  # the commit stands; garbage is collected next time
            log.warning("Garbage collection in %s failed: %s", self.path, exc)

    @_writes
    def create_payload_index(self, field: str, kind: str) -> None:
        """Index payload ``field`` as ``kind`` (keyword, integer, float, bool) so searches can
        filter on it: every segment's column is built from the stored payloads and committed
        (persisting the buffer first); durable on return. A stored value that does not fit the
        kind is refused, naming the point, and nothing changes."""
        kind = payload_index.check_kind(field, kind)
        if self.payload_indexes.get(field) != kind:
            self._reindex({**self.payload_indexes, field: kind})

    @_writes
    def drop_payload_index(self, field: str) -> None:
        """Stop indexing payload ``field`` (filters on it are refused from then on); durable on return."""
        if field not in self.payload_indexes:
            raise InvalidParameterError(
                f"Payload field {field!r} is not indexed; indexed: {sorted(self.payload_indexes)}.")
        self._reindex({f: k for f, k in self.payload_indexes.items() if f != field})

    @_writes
    def _reindex(self, schema: dict[str, str]) -> None:
        self.persist(train=False)
        state = self._state
        schema = payload_index.check_schema(schema)
        parts = tuple(replace(p, segment=p.segment.with_columns(
            payload_index.columns(p.segment.payloads, p.segment.ids, schema))) for p in state.parts)
        self._commit(replace(state, parts=parts), [], config=dict(self._config, payload_indexes=schema))

    # --- reads -----------------------------------------------------------------------------
    def _locate(self, state: State, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(part index, row) of every id's live row; -1 where the id is absent."""
        where = np.full(len(ids), -1, np.int64)
        rows = np.full(len(ids), -1, np.int64)
        for i, part in enumerate(state.parts):
            r = part.find_live(ids)
            hit = r >= 0
            where[hit], rows[hit] = i, r[hit]
        return where, rows

    @staticmethod
    def _point(state: State, pid: int, part: int, row: int, with_vectors: bool, with_payloads: bool) -> Point:
        seg = state.parts[part].segment
        vector = np.array(seg.vectors[row]) if with_vectors and seg.vectors is not None else None
        payload = None
        if with_payloads and seg.payloads is not None and (text := seg.payloads[row].as_py()) is not None:
            payload = json.loads(text)
        return Point(pid, vector, payload)

    def get(self, ids, *, with_vectors: bool = True, with_payloads: bool = True) -> list[Point]:
        """The points with these ids, in request order; missing ids are omitted.

        Vectors come from the stored raw vectors (unit-normalised for cosine); without
        store_vectors an encoded point's vector is None.
        """
        state = self._check_open()
        ids = check_ids(ids, unique=False)
        where, rows = self._locate(state, ids)
        return [self._point(state, pid, i, r, with_vectors, with_payloads)
                for pid, i, r in zip(ids.tolist(), where.tolist(), rows.tolist()) if i >= 0]

    def payloads(self, ids) -> list[dict | None]:
        """The payload of every id, aligned with ``ids`` (None for a missing id or no payload)."""
        found = {p.id: p.payload for p in self.get(ids, with_vectors=False)}
        return [found.get(i) for i in check_ids(ids, unique=False).tolist()]

    def _predicate(self, filter) -> Bool | None:
        """The parsed filter, remembered by its JSON text and the payload indexes: the parse
        costs a single query ~15 us, its JSON text 0.5 us by orjson (json.dumps: ~5; keys in
        another order: parsed again). Values JSON cannot write (bytes, numpy scalars) are parsed
        every time, and so are texts with a null, which orjson also writes for NaN and inf."""
        schema = self.payload_indexes
        text = filter
        if not isinstance(filter, str):
            try:
                text = orjson.dumps(filter)
            except TypeError:
                return parse_filter(filter, schema)
            if b"null" in text:
                return parse_filter(filter, schema)
        key = text, tuple(schema.items())
        pred = self._parsed.get(key, self._parsed)
        if pred is self._parsed:
            if len(self._parsed) >= PARSED_FILTERS:
                self._parsed.clear()
            pred = self._parsed[key] = parse_filter(filter, schema)
        return pred

    def count_matching(self, filter=None) -> int:
        """How many live points pass ``filter`` (a filter in `annvq.filters`' language; None: all)."""
        state = self._check_open()
        pred = self._predicate(filter)
        return sum(part.allowed(pred)[1] for part in state.parts)

    def scroll(self, filter=None, *, limit: int = 100, cursor: int | None = None, with_vectors: bool = False,
               with_payloads: bool = True) -> tuple[list[Point], int | None]:
        """The live points passing ``filter`` in id order from id ``cursor`` on, at most ``limit``,
        and the cursor of the next page (None after the last): pages never repeat or skip a point
        that stays put while the caller pages."""
        state = self._check_open()
        pred = self._predicate(filter)
        limit = check_int(limit, "limit", "Collection.scroll")
        start = 0 if cursor is None else int(check_ids([cursor])[0])
        ids, where, rows = [], [], []
        for i, part in enumerate(state.parts):
            bits, n = part.allowed(pred)
            if not n:
                continue
            seg = part.segment
            by_id = seg.id_order[np.searchsorted(seg.ids, start, sorter=seg.id_order):]
            if len(bits):  # only the allowed rows, still in id order
                by_id = by_id[np.unpackbits(bits, count=seg.rows, bitorder="little").view(bool)[by_id]]
            by_id = np.asarray(by_id[:limit + 1])
            ids.append(seg.ids[by_id])
            where.append(np.full(len(by_id), i))
            rows.append(by_id)
        if not ids:
            return [], None
        ids, where, rows = (np.concatenate(a) for a in (ids, where, rows))
        order = np.argsort(ids, kind="stable")[:limit + 1]
        page = [self._point(state, int(ids[j]), int(where[j]), int(rows[j]), with_vectors, with_payloads)
                for j in order[:limit]]
        return page, int(ids[order[limit]]) if len(order) > limit else None

    def search(self, Q, k: int = 10, *, nprobe: int | None = None, rerank: int | None = None,
               exact: bool = False, params=None, filter=None) -> tuple[np.ndarray, np.ndarray]:
        """(distances (nq, k), ids (nq, k)) best first, as ``Index.search`` reports them; see
        `query` for the parameters."""
        if filter is None and not exact and rerank is None and params is None:
            found = self._search_one(self._check_open(), Q, k, nprobe)
            if found is not None:
                return found[:2]
        hits = self.query(Q, k, nprobe=nprobe, rerank=rerank, exact=exact, params=params, filter=filter)
        return hits.distances, hits.ids

    def query(self, Q, k: int = 10, *, nprobe: int | None = None, rerank: int | None = None,
              exact: bool = False, params=None, filter=None, probes=None) -> Hits:
        """The k best live points of every query that pass ``filter``, with their payloads and
        vectors at hand, how many were found and the strategy that ran (`annvq.part_search`).

        Encoded segments are scanned through the model (nprobe, rerank, codec params); the
        buffer, raw segments and ``exact=True`` are brute force over raw vectors. Deleted rows
        and rows failing the filter are skipped inside the scans. With a filter, nprobe starts
        where the probed lists are expected to hold k matching rows, and a query that found fewer
        than k (or fewer than every matching point) is searched again with nprobe doubled until it
        has them or every list was read, so k points come back whenever k match.

        ``probes`` (nq, nprobe) are the lists to read, probed once elsewhere with the same model
        (`Index.probed`: a sharded collection's router) instead of by every segment's scan.
        """
        state = self._check_open()
        if filter is None and not exact and probes is None and rerank is None and params is None:
            found = self._search_one(state, Q, k, nprobe)
            if found is not None:
                distances, ids, rows, part = found
                return Hits(distances, ids, part, rows, state.parts, np.full(1, 1 if nprobe is None else nprobe), "ivf")
        planner = state.model or self._blank
        if probes is not None and (filter is not None or exact):
            raise InvalidParameterError("probes are for unfiltered IVF searches: a filter or exact=True "
                                        "chooses what to read itself.")
        plan = planner.plan(Q, k, nprobe=nprobe, rerank=rerank, params=params, owner="Collection.search",
                            probes=probes)
        pred = self._predicate(filter)
        allowed = [(part, *part.allowed(pred)) for part in state.parts]
        allowed = [a for a in allowed if a[2]]
        filtered_ivf = pred is not None and state.model is not None and not exact
        if filtered_ivf:
            plan = plan._replace(nprobe=self._nprobe_for_k(state.model, plan, pred, allowed))
        hits, strategies = self._search(state, plan, pred, allowed, exact)
        want = min(plan.k, sum(n for _, _, n in allowed)) if filtered_ivf else 0
        if want:  # hits are padded at the end: a query has fewer than want where hit want-1 is none
            short = np.flatnonzero(hits.ids[:, want - 1] < 0)
            nprobe, nlist, ran = plan.nprobe, state.model.nlist, len(strategies)
            while len(short) and nprobe < nlist:
                nprobe = min(2 * nprobe, nlist)
                again = plan._replace(queries=readonly(plan.queries[short]), nprobe=nprobe, cache=QueryCache())
                more, more_strategies = self._search(state, again, pred, allowed, exact)
                hits.put(short, more)
                strategies += [s for s in more_strategies if s not in strategies]
                short = short[more.ids[:, want - 1] < 0]
            if len(strategies) > ran:
                hits = replace(hits, strategy="+".join(strategies))
        return hits

    @staticmethod
    def _search_one(state: State, Q, k, nprobe) -> tuple[np.ndarray, ...] | None:
        """(distances, ids, rows, part) of a single query over encoded segments, without a filter
        or knobs, each segment's tombstones as its live bitset: one kernel call for one segment
        (`Index.search_one`; on a pydocs collection 48 us a query against 69 through the plan),
        the query rotated and probed once for several (`Index.search_parts`). None where that
        does not apply (a buffer or raw segment among the parts, among others)."""
        parts = state.parts
        if state.model is None or not parts or any(p.segment.lists is None for p in parts):
            return None
        if len(parts) == 1:
            found = state.model.search_one(Q, k, nprobe, lists=parts[0].segment.lists, live=parts[0].live_bits,
                                           owner="Collection.search")
            return None if found is None else (*found, found[2] >> 63)  # part 0, or -1 where none
        return state.model.search_parts(Q, k, nprobe, [(p.segment.lists, p.live_bits) for p in parts],
                                        owner="Collection.search")

    @staticmethod
    def _nprobe_for_k(model: Index, plan: SearchPlan, pred: Bool, allowed: list) -> int:
        """The plan's nprobe, raised to where the probed lists are expected to hold k allowed rows:
        each probed list holds on average count / (lists holding any) allowed rows of each
        encoded segment. Starting there beats finding too few and searching again."""
        per_list = sum(count / (model.nlist if (keep := part.segment.matching(pred).lists) is None else keep.sum())
                       for part, _, count in allowed if part.segment.lists is not None)
        if not per_list:
            return plan.nprobe
        return int(min(model.nlist, max(plan.nprobe, np.ceil(plan.k / per_list))))

    @staticmethod
    def _search(state: State, plan: SearchPlan, pred: Bool | None, allowed: list,
                exact: bool) -> tuple[Hits, list[str]]:
        """Every part with allowed rows scanned (`part_search.scan_part`) and merged, with the
        strategies that ran."""
        found, strategies = [], []
        for part, bits, count in allowed:
            scores, rows, strategy = part_search.scan_part(state.model, part, plan, pred, bits, count, exact=exact)
            found.append((scores, rows))
            if strategy not in strategies:
                strategies.append(strategy)
        parts = tuple(part for part, _, _ in allowed)
        return Hits.merge(plan, parts, found, "+".join(strategies) or "none"), strategies

    # --- maintenance -----------------------------------------------------------------------
    def verify(self) -> list[str]:
        """A full checksum pass over the committed files, and every payload index column checked
        against the payloads it was built from; one line per problem, [] when healthy."""
        state = self._check_open()
        problems = snapshot.verify(self.path, state.manifest)
        if problems:
            return problems
        schema = self.payload_indexes
        for part in state.persisted:
            seg = part.segment
            rebuilt = payload_index.columns(seg.payloads, seg.ids, schema)
            problems += [f"{seg.columns_file}: payload index {field!r} disagrees with the payloads of {seg.name}."
                         for field in schema if not rebuilt[field].equals(seg.columns[field])]
        return problems

    def stats(self) -> dict:
        state = self._check_open()
        return {
            "count": state.count,
            "deleted": sum(p.n_deleted for p in state.parts),
            "segments": len(state.persisted),
            "buffered": sum(p.live for p in state.buffer),
            "bytes_on_disk": layout.files_bytes(state.manifest),
            "bytes_mapped": state.mapped_bytes,
            "format_version": state.manifest["format_version"],
            "version": state.manifest["version"],
            "spec": self.spec, "metric": self.metric, "dim": self.dim,
            "trained": state.model is not None, "nlist": self.nlist,
        }

    def snapshot(self, dest_dir) -> dict:
        """Copy the committed state (after persisting, when writable) to ``dest_dir``, which
        must not hold a collection; returns {"path", "files": {name: sha256}}."""
        if not self.read_only:
            self.persist()
        state = self._check_open()
        return snapshot.copy(self.path, state.manifest, os.path.abspath(os.fspath(dest_dir)))

    def warmup(self) -> None:
        """Compile (or load from numba's cache) the search kernels now, and let every segment
        build its derived search layout (e.g. FastScan blocks), so the first query pays neither."""
        state = self._check_open()
        part_search.warmup()
        if state.model is not None:
            state.model.codec.warmup()
            if state.count:
                self.search(state.model.centroids_[:1], 1)
