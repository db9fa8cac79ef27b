"""One shard: an ordinary `Collection` on its own directory, run as a Ray actor.

The class is plain Python; `ShardedCollection` makes it a Ray actor with ``max_restarts``, so
this module imports no Ray. Ray re-runs ``__init__`` with the same arguments when it restarts a
dead shard, which reopens the shard's last commit: nothing persisted is lost, and what was
upserted but not persisted is lost as it would be on one node.
"""

from __future__ import annotations

import numpy as np

from ..collection import Collection
from ..errors import CollectionNotFoundError, InvalidParameterError
from ..index import Index
from ..ivf import InvertedLists
from ..threads import set_threads

#: the Collection methods a router may call on a shard through `Shard.call`
METHODS = frozenset({"upsert", "delete", "get", "count_matching", "scroll", "persist", "compact",
                     "create_payload_index", "drop_payload_index", "verify", "stats", "warmup"})


class Shard:
    """The collection at ``path``: opened if it exists, else created with ``config`` (the
    arguments of `Collection.create`), then given the shared model (``model_state``, an
    `Index.state()`) if it has none yet. ``threads`` caps the shard's numba/BLAS threads."""

    def __init__(self, path: str, config: dict, model_state: tuple, *, read_only: bool = False,
                 threads: int | None = None):
        if threads is not None:
            set_threads(threads)
        try:
            col = Collection.open(path, read_only=read_only)
        except CollectionNotFoundError:
            if read_only:
                raise
            col = Collection.create(path, **config)
        if not col.is_trained and not read_only:
            col.adopt_model(Index.from_state(*model_state))
        self.col = col

    def call(self, method: str, *args, **kwargs):
        """``Collection.<method>(*args, **kwargs)`` for a method in METHODS."""
        if method not in METHODS:
            raise InvalidParameterError(f"A shard does not run {method!r}; it runs {sorted(METHODS)}.")
        return getattr(self.col, method)(*args, **kwargs)

    def add_encoded(self, *pieces: tuple) -> int:
        """Commit points encoded by build tasks (`build.encode_chunk`'s pieces for this shard:
        lists, ids, codes, factors, raw vectors or None) as one segment; returns how many."""
        cat = lambda i: None if pieces[0][i] is None else np.concatenate([p[i] for p in pieces])
        return self.col.add_encoded(InvertedLists.from_rows(self.col.nlist, *(cat(i) for i in range(5))))

    def count(self) -> int:
        return self.col.count

    def query(self, Q: np.ndarray, k: int, **options) -> tuple:
        """The shard's k best of every query as plain arrays: (distances, ids, nprobe, strategy)."""
        hits = self.col.query(Q, k, **options)
        return hits.distances, hits.ids, hits.nprobe, hits.strategy

    def close(self) -> None:
        self.col.close()
