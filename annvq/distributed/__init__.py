"""Scale out on Ray (``pip install annvq[ray]``): a collection sharded over Ray actors.

One model (coarse centroids + codec) is trained once and shared; points go to the shard their
id hashes to (`routing`); each shard is an ordinary `Collection` in an actor that Ray restarts
from its last commit (`shard`); searches scatter to every shard and merge by score, flagging
shards that did not answer (`sharded`); `build` encodes a vector file into a new cluster; the
cluster manifest is `cluster`. Ray itself is imported only when a cluster is started.
"""

from .build import build_sharded
from .cluster import is_cluster
from .sharded import Coverage, ShardedCollection, ShardedHits, connect

__all__ = ["Coverage", "ShardedCollection", "ShardedHits", "build_sharded", "connect", "is_cluster"]
