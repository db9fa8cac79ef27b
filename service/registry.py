"""The set of open collections under the data dir: one sub-directory per collection.

Names are checked against one safe pattern before they touch the file system, so no request can
reach a path outside the data dir. Directories starting with "." (snapshots, restores in
progress) are never collections."""

from __future__ import annotations

import logging
import re
import shutil
import threading
from pathlib import Path

from annvq import Collection
from annvq.distributed.cluster import is_cluster
from annvq.errors import (AnnvqError, CollectionExistsError, CollectionNotFoundError, InvalidParameterError,
                          UnsupportedOperationError)

log = logging.getLogger("annvq.service")

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_name(name: str, what: str = "collection name") -> str:
    """`name` if it is a safe single path component, else InvalidParameterError (400)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidParameterError(
            f"The {what} must be 1-64 characters from [A-Za-z0-9_-], starting with a letter or "
            f"digit. Got {name!r}.")
    return name


class Registry:
    """Open collections by name; create, drop and look up are safe from many threads. With
    ``ray`` (Ray connected by the caller), a directory holding a sharded cluster opens as an
    `annvq.distributed.ShardedCollection` whose searches wait ``shard_timeout`` seconds."""

    def __init__(self, data_dir: Path, *, read_only: bool = False, ray: bool = False,
                 shard_timeout: float | None = None):
        self.data_dir = Path(data_dir)
        self.read_only = read_only
        self.ray = ray
        self.shard_timeout = shard_timeout
        self.failed: dict[str, str] = {}  # name -> why it could not be opened at start-up
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()

    def open_all(self) -> None:
        """Open every collection directory; one that fails is logged and left out, not fatal."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in self.data_dir.iterdir() if p.is_dir()):
            if not NAME_RE.fullmatch(path.name):
                continue
            try:
                self._collections[path.name] = self._open(path)
            except AnnvqError as exc:
                log.error("collection %r not opened: %s", path.name, exc)
                self.failed[path.name] = str(exc)

    def _open(self, path: Path):
        """The collection or, with Ray, the sharded cluster at ``path``."""
        if not is_cluster(path):
            return Collection.open(path, read_only=self.read_only)
        if not self.ray:
            raise UnsupportedOperationError(f"{path} is a sharded cluster: serve it with --ray.")
        from annvq.distributed import ShardedCollection

        return ShardedCollection.open(path, read_only=self.read_only, timeout=self.shard_timeout)

    def warmup(self) -> None:
        for col in list(self._collections.values()):
            col.warmup()

    def close_all(self) -> None:
        """Close every collection, persisting first what a writable one holds only in memory: a
        clean shutdown loses no acknowledged write (a crash loses what was not persisted). It
        does not train a collection that has passed its threshold: a training can outlast the
        grace period a supervisor gives a stopping process, and a kill then would lose the writes."""
        with self._lock:
            for name, col in self._collections.items():
                if not self.read_only:
                    try:
                        col.persist(train=False)
                    except Exception:
                        log.exception("collection %r: persisting at shutdown failed; its unpersisted "
                                      "writes are dropped", name)
                col.close()
            self._collections.clear()

    def names(self) -> list[str]:
        return sorted(self._collections)

    def get(self, name: str) -> Collection:
        try:
            return self._collections[check_name(name)]
        except KeyError:
            raise CollectionNotFoundError(f"No collection named {name!r}.") from None

    def path(self, name: str) -> Path:
        return self.data_dir / check_name(name)

    def check_free(self, name: str) -> Path:
        """The directory for a new collection `name`; CollectionExistsError if it is taken."""
        path = self.path(name)
        if name in self._collections or path.exists():
            raise CollectionExistsError(f"A collection named {name!r} already exists.")
        return path

    def create(self, name: str, **options) -> Collection:
        with self._lock:
            path = self.check_free(name)
            col = self._collections[name] = Collection.create(path, **options)
            return col

    def adopt(self, name: str, staged: Path) -> Collection:
        """Move a complete collection directory `staged` (inside the data dir) in as `name`."""
        with self._lock:
            path = self.check_free(name)
            staged.rename(path)
            col = self._collections[name] = self._open(path)
            return col

    def drop(self, name: str) -> None:
        """Close and delete a collection's directory (its snapshots are kept)."""
        col = self.get(name)
        with self._lock:
            if self._collections.get(name) is not col:
                raise CollectionNotFoundError(f"No collection named {name!r}.")
            del self._collections[name]
            col.close()
            shutil.rmtree(self.path(name))
