"""Which shard owns a point: splitmix64 of its int64 id, modulo the number of shards.

A fixed mixing function (not Python's ``hash``, which is salted per process) so every process,
now and after a restart, routes an id to the same shard, and consecutive ids spread evenly.
"""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
#: the routing rule as the cluster manifest records it
RULE = "splitmix64(id) % shards"


def splitmix64(ids: np.ndarray) -> np.ndarray:
    """Vigna's splitmix64 finaliser of ``ids + golden gamma``, as uint64 (wrapping arithmetic)."""
    z = np.asarray(ids, dtype=np.int64).astype(np.uint64) + GOLDEN
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


def shard_of(ids: np.ndarray, shards: int) -> np.ndarray:
    """The shard (0..shards-1, int64) of every id."""
    return (splitmix64(ids) % np.uint64(shards)).astype(np.int64)


def split(ids: np.ndarray, shards: int) -> list[np.ndarray]:
    """For every shard, the positions in ``ids`` it owns, in their original order."""
    owner = shard_of(ids, shards)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(shards + 1))
    return [order[bounds[s]:bounds[s + 1]] for s in range(shards)]
