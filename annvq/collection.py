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
import shutil
import threading
from dataclasses import dataclass, replace

import faiss
import numpy as np

from .errors import (CollectionClosedError, CollectionExistsError, CollectionNotFoundError,
                     CorruptFileError, InvalidParameterError, ReadOnlyError)
from .index import Index
from .ivf import InvertedLists
from .segments import Part, Segment, State, carry, concat_payloads, encode_payloads
from .spec import parse_spec
from .storage import arrow, manifest
from .storage.lock import WriterLock
from .validation import as_vectors, check_ids, check_int, check_metric, normalize_rows

log = logging.getLogger(__name__)

#: rows sampled to train the model when no sample is given (k-means itself uses 50 per list)
TRAIN_SAMPLE = 200_000
#: committed versions kept on disk for readers that still map older files
KEEP_VERSIONS = 3
#: files at most this large are checksummed on open too (manifest, model, tombstones)
HASH_ON_OPEN = 64 << 20


def default_train_threshold(nlist: int) -> int:
    """Points needed before training: faiss's 39 per centroid (rounded to 40), at least 1000."""
    return max(1000, 40 * nlist)


@dataclass(frozen=True)
class Point:
    """One stored point; ``vector`` is None when not requested or not stored, ``payload`` when absent."""

    id: int
    vector: np.ndarray | None = None
    payload: dict | None = None


def exact_search(Q: np.ndarray, vectors: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force (reported distances, row positions) over raw vectors, through faiss's BLAS knn."""
    if metric == "l2":
        D, I = faiss.knn(Q, vectors, k, metric=faiss.METRIC_L2)
        return np.sqrt(np.maximum(D, 0)).astype(np.float32), I.astype(np.int64)
    D, I = faiss.knn(Q, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    return D.astype(np.float32), I.astype(np.int64)


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

    # --- life cycle ----------------------------------------------------------------------
    @classmethod
    def create(cls, path, dim: int, *, metric: str = "l2", spec: str = "IVF1024,SAQ4",
               store_vectors: bool = True, train_threshold: int | None = None, seed: int = 0,
               keep_versions: int = KEEP_VERSIONS) -> "Collection":
        """A new empty collection at ``path`` (created if needed); CollectionExistsError if one is there.

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
        if os.path.exists(path) and not os.path.isdir(path):
            raise CollectionExistsError(f"{path} exists and is not a directory.")
        if os.path.isdir(path) and (manifest.read_current(path) or manifest.manifest_versions(path)):
            raise CollectionExistsError(f"A collection already exists at {path}.")
        os.makedirs(path, exist_ok=True)
        lock = WriterLock(path)
        config = {"dim": dim, "metric": metric, "spec": str(parse_spec(spec)),
                  "store_vectors": bool(store_vectors), "train_threshold": threshold, "seed": seed}
        body = {"version": 1, "collection": config, "model": None, "segments": [], "tombstones": None,
                "files": {}, "next_seq": 1}
        try:
            body = manifest.commit(path, body)
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
            state = cls._load(path)
            if lock is not None:
                manifest.collect_garbage(path, keep_versions)  # stray temp files of a crashed writer
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return cls(path, state.manifest["collection"], state, read_only=read_only, lock=lock,
                   keep_versions=keep_versions)

    @classmethod
    def _load(cls, path: str) -> State:
        # A concurrent writer may commit and collect the files of the manifest being read:
        # retry while CURRENT keeps moving.
        for attempt in range(5):
            current = manifest.read_current(path)
            try:
                return cls._load_manifest(path, manifest.load(path))
            except CorruptFileError:
                if attempt == 4 or manifest.read_current(path) == current:
                    raise

    @classmethod
    def _load_manifest(cls, path: str, body: dict) -> State:
        files = body["files"]
        manifest.check_sizes(path, files)
        for name in [body["model"], body["tombstones"]]:
            small = name and files[name]["size"] <= HASH_ON_OPEN
            if small and manifest.sha256_file(os.path.join(path, name)) != files[name]["sha256"]:
                raise CorruptFileError(f"{os.path.join(path, name)} fails its sha256 check: the file is damaged.")
        model = None
        if body["model"]:
            arrays, _, extra = arrow.read_arrays(os.path.join(path, body["model"]))
            model = Index.from_state(extra["model"], arrays)
        parts = []
        for entry in body["segments"]:
            arrays, _, _ = arrow.read_arrays(os.path.join(path, entry["file"]))
            segment = Segment.from_arrays(arrays, entry["file"])
            if segment.rows != entry["rows"]:
                raise CorruptFileError(
                    f"{entry['file']} holds {segment.rows} rows; the manifest says {entry['rows']}.")
            parts.append(Part(segment))
        if body["tombstones"]:
            arrays, _, _ = arrow.read_arrays(os.path.join(path, body["tombstones"]))
            # rows of every segment named in "tombstone_segments", concatenated; counts split them
            index = {p.segment.name: i for i, p in enumerate(parts)}
            bounds = np.concatenate([[0], np.cumsum(arrays["counts"])])
            if len(bounds) != len(body["tombstone_segments"]) + 1 or bounds[-1] != len(arrays["rows"]):
                raise CorruptFileError(f"{body['tombstones']} does not match the manifest's tombstone list.")
            for j, name in enumerate(body["tombstone_segments"]):
                i = index[name]
                parts[i] = parts[i].kill(arrays["rows"][bounds[j]:bounds[j + 1]])
        return State(model, tuple(parts), body, mapped_bytes=sum(e["size"] for e in files.values()))

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
        X = as_vectors(X, self.dim, name=name)
        return normalize_rows(X, name=name) if self.metric == "cosine" else X

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
        # takes in the ones before it as a binary counter carries (see `carry`).
        persisted = [p for p in parts if p.segment.name is not None]
        chunks, merged = carry([p for p in parts if p.segment.name is None], [Part(Segment.raw(ids, X, texts))])
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
    def train(self, sample=None) -> None:
        """Train the model on ``sample`` (or up to TRAIN_SAMPLE stored points), re-encode every
        point and persist: durable when it returns."""
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
        model = Index(self.dim, self.spec, self.metric, keep_vectors=self.store_vectors,
                      seed=self._config["seed"]).train(X)
        new = [Segment.encoded(model.encode_lists(vectors, ids), ids, payloads)] if len(ids) else []
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
        if model is None:
            vectors = np.concatenate([p.segment.vectors[r] for p, r in zip(parts, rows)])
            return Segment.raw(ids, vectors, payloads)
        pieces = []
        for part, r in zip(parts, rows):
            seg = part.segment
            if seg.lists is not None:
                keep = np.zeros(seg.rows, bool)
                keep[r] = True
                pieces.append(seg.lists.select(keep))
            else:
                pieces.append(model.encode_lists(seg.vectors[r], seg.ids[r]))
        return Segment.encoded(functools.reduce(InvertedLists.merge, pieces), ids, payloads)

    def _commit(self, state: State, new: list[Segment], *, new_model: bool = False) -> None:
        """Write the new segments (and model, tombstones), commit a manifest, map the new files.

        ``state.parts`` holds the persisted parts that stay; the buffer is replaced by ``new``.
        On any failure the in-memory state and the committed files are left as they were.
        """
        old = state.manifest
        seq = old["next_seq"]
        files = {}
        header = {"dim": self.dim, "metric": self.metric, "spec": self.spec}

        def write(name: str, arrays: dict, kind: str, extra: dict | None = None) -> None:
            files[name] = manifest.durable_write(
                self.path, name, lambda p: arrow.write_arrays(p, arrays, dict(header, kind=kind), extra))

        model_name = old["model"]
        if new_model:
            meta, arrays = state.model.state()
            model_name = f"model-{seq:06d}.arrow"
            write(model_name, arrays, "model", {"model": meta})
            seq += 1
        segments = [{"file": p.segment.name, "rows": p.segment.rows} for p in state.parts]
        for segment in new:
            name = f"seg-{seq:06d}.arrow"
            write(name, segment.arrays(), "segment", {"rows": segment.rows})
            files[name]["rows"] = segment.rows
            segments.append({"file": name, "rows": segment.rows})
            seq += 1
        dead = [p for p in state.parts if p.n_deleted]
        tomb_name = None
        if dead:
            tomb_name = f"tomb-{seq:06d}.arrow"
            rows = np.concatenate([np.flatnonzero(p.deleted) for p in dead])
            counts = np.array([p.n_deleted for p in dead], np.int64)
            write(tomb_name, {"rows": rows, "counts": counts}, "tombstones")
            files[tomb_name]["rows"] = len(rows)
            seq += 1
        keep = {model_name} | {p.segment.name for p in state.parts}
        files.update({n: e for n, e in old["files"].items() if n in keep and n not in files})
        body = {"version": old["version"] + 1, "collection": self._config, "model": model_name,
                "segments": segments, "tombstones": tomb_name,
                "tombstone_segments": [p.segment.name for p in dead], "files": files, "next_seq": seq}
        body = manifest.commit(self.path, body)
        # Map what was just written, so the buffer's memory is released and reads are zero-copy.
        mapped = list(state.parts)
        model = state.model
        if new_model:
            arrays, _, extra = arrow.read_arrays(os.path.join(self.path, model_name))
            model = Index.from_state(extra["model"], arrays)
        for entry in segments[len(state.parts):]:
            arrays, _, _ = arrow.read_arrays(os.path.join(self.path, entry["file"]))
            mapped.append(Part(Segment.from_arrays(arrays, entry["file"])))
        self._state = State(model, tuple(mapped), body, dirty=False,
                            mapped_bytes=sum(e["size"] for e in files.values()))
        try:
            manifest.collect_garbage(self.path, self.keep_versions)
        except OSError as exc:  # the commit stands; garbage is collected next time
            log.warning("Garbage collection in %s failed: %s", self.path, exc)

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

    def get(self, ids, *, with_vectors: bool = True, with_payloads: bool = True) -> list[Point]:
        """The points with these ids, in request order; missing ids are omitted.

        Vectors come from the stored raw vectors (unit-normalised for cosine); without
        store_vectors an encoded point's vector is None.
        """
        state = self._check_open()
        ids = check_ids(ids, unique=False)
        where, rows = self._locate(state, ids)
        out = []
        for pid, i, r in zip(ids.tolist(), where.tolist(), rows.tolist()):
            if i < 0:
                continue
            seg = state.parts[i].segment
            vector = np.array(seg.vectors[r]) if with_vectors and seg.vectors is not None else None
            payload = None
            if with_payloads and seg.payloads is not None and (text := seg.payloads[r].as_py()) is not None:
                payload = json.loads(text)
            out.append(Point(pid, vector, payload))
        return out

    def payloads(self, ids) -> list[dict | None]:
        """The payload of every id, aligned with ``ids`` (None for a missing id or no payload)."""
        found = {p.id: p.payload for p in self.get(ids, with_vectors=False)}
        return [found.get(i) for i in check_ids(ids, unique=False).tolist()]

    def search(self, Q, k: int = 10, *, nprobe: int | None = None, rerank: int | None = None,
               exact: bool = False, params=None) -> tuple[np.ndarray, np.ndarray]:
        """(distances (nq, k), ids (nq, k)) best first, as ``Index.search`` reports them.

        Encoded segments are searched through the model (nprobe, rerank, codec params); the
        buffer, raw segments and ``exact=True`` are brute force over raw vectors. Each part is
        over-fetched by its tombstone count so deleted rows never displace live ones.
        """
        state = self._check_open()
        k = check_int(k, "k", "Collection.search")
        if nprobe is not None:
            check_int(nprobe, "nprobe", "Collection.search", 1, self.nlist)
        Q = self._vectors(Q, "queries")
        worst = np.float32(np.inf if self.metric == "l2" else -np.inf)
        live = [part for part in state.parts if part.live]
        memo = {}  # the queries' rotation and probes, shared by the segments (Index.search)
        found = [self._search_part(state, part, Q, k, nprobe, rerank, exact, params, memo) for part in live]
        if len(live) == 1 and live[0].deleted is None and found[0][0].shape[1] == k:
            return found[0]  # one part without tombstones: already k, best first
        D = np.concatenate([np.full((len(Q), k), worst, np.float32), *(d for d, _ in found)], axis=1)
        I = np.concatenate([np.full((len(Q), k), -1, np.int64), *(i for _, i in found)], axis=1)
        key = np.where(I < 0, np.inf, D if self.metric == "l2" else -D)
        order = np.argsort(key, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)

    def _search_part(self, state, part, Q, k, nprobe, rerank, exact, params, memo):
        """Top-k live (distances, ids) of one part; deleted rows are dropped after over-fetching.

        A first pass fetches k + min(deleted, 3k); queries left short of k by tombstones are
        re-run with k + deleted, which is enough whatever the deleted rows' ranks are.
        """
        seg = part.segment
        worst = np.float32(np.inf if self.metric == "l2" else -np.inf)

        def run(Qs, kk):
            if seg.lists is not None and not exact:
                index = state.model.with_lists(seg.lists)
                D, I = index.search(Qs, kk, nprobe=nprobe, rerank=rerank, params=params, memo=memo)
                if part.deleted is None:  # rows only serve to look tombstones up
                    return D, I
                rows = np.where(I >= 0, seg.find(I.ravel()).reshape(I.shape), -1)
            else:
                if seg.vectors is None:
                    raise InvalidParameterError(
                        "exact=True needs the raw vectors: create the collection with store_vectors=True.")
                D, rows = exact_search(Qs, seg.vectors, kk, self.metric)
                I = np.where(rows >= 0, seg.ids[np.maximum(rows, 0)], -1)
            if part.deleted is not None:
                dead = (rows >= 0) & part.deleted[np.maximum(rows, 0)]
                I = np.where(dead, -1, I)
                D = np.where(dead, worst, D)
            return D, I

        kk = min(seg.rows, k + min(part.n_deleted, 3 * k))
        D, I = run(Q, kk)
        full = min(seg.rows, k + part.n_deleted)
        if full > kk:
            short = np.flatnonzero((I >= 0).sum(1) < k)
            if len(short):
                D2, I2 = run(Q[short], full)
                D = np.concatenate([D, np.full((len(Q), full - kk), worst, np.float32)], axis=1)
                I = np.concatenate([I, np.full((len(Q), full - kk), -1, np.int64)], axis=1)
                D[short], I[short] = D2, I2
        return D.astype(np.float32), I

    # --- maintenance -----------------------------------------------------------------------
    def verify(self) -> list[str]:
        """A full checksum pass over the committed files; one line per problem, [] when healthy."""
        state = self._check_open()
        body = state.manifest
        problems = [f"newer manifest skipped: {e}" for e in body.get("fallback_from", [])]
        try:
            manifest.read_manifest(self.path, manifest.manifest_name(body["version"]))
        except CorruptFileError as exc:
            problems.append(f"{manifest.manifest_name(body['version'])}: {exc}")
        problems += manifest.verify_files(self.path, body["files"])
        for name in body["files"]:
            if not any(p.startswith(name + ":") for p in problems):
                try:
                    arrow.read_arrays(os.path.join(self.path, name))
                except CorruptFileError as exc:
                    problems.append(f"{name}: {exc}")
        return problems

    def stats(self) -> dict:
        state = self._check_open()
        files = state.manifest["files"]
        return {
            "count": state.count,
            "deleted": sum(p.n_deleted for p in state.parts),
            "segments": len(state.persisted),
            "buffered": sum(p.live for p in state.buffer),
            "bytes_on_disk": sum(e["size"] for e in files.values()),
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
        dest = os.path.abspath(os.fspath(dest_dir))
        if os.path.isdir(dest) and os.listdir(dest):
            raise CollectionExistsError(f"Snapshot destination {dest} is not empty.")
        os.makedirs(dest, exist_ok=True)
        name = manifest.manifest_name(state.manifest["version"])
        out = {}
        for f in [*state.manifest["files"], name]:
            copy = functools.partial(shutil.copyfile, os.path.join(self.path, f))
            entry = manifest.durable_write(dest, f, copy)
            if f in state.manifest["files"] and entry["sha256"] != state.manifest["files"][f]["sha256"]:
                raise CorruptFileError(f"{os.path.join(self.path, f)} changed on disk: run verify().")
            out[f] = entry["sha256"]
        manifest.point_current(dest, name)
        return {"path": dest, "files": out}

    def warmup(self) -> None:
        """Compile (or load from numba's cache) the search kernels now, and let every segment
        build its derived search layout (e.g. FastScan blocks), so the first query pays neither."""
        state = self._check_open()
        if state.model is not None:
            state.model.codec.warmup()
            if state.count:
                self.search(state.model.centroids_[:1], 1)
