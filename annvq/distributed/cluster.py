"""The cluster manifest: what a sharded collection is made of, committed crash-safely.

    DIR/CLUSTER/CURRENT, MANIFEST-<n>.json   the manifest, by storage.manifest's commit protocol
    DIR/CLUSTER/model-<seq>.arrow            the shared model (coarse centroids + codec state)
    DIR/shard-000/, DIR/shard-001/, ...      one ordinary collection per shard

The manifest names the model file, the collection settings (dim, metric, spec, payload indexes),
the shard directories in shard order and the routing rule; ``cluster_format`` is checked on open.
Keeping it in its own sub-directory means ``Collection.open(DIR)`` never mistakes a cluster for a
collection.
"""

from __future__ import annotations

import os

from ..errors import CollectionExistsError, CollectionNotFoundError, CorruptFileError, UnsupportedFormatError
from ..index import Index
from ..storage import layout, manifest
from . import routing

CLUSTER_DIR = "CLUSTER"
CLUSTER_FORMAT = 1
KIND = "annvq-cluster"
#: manifests kept (the model file is shared by all of them)
KEEP_VERSIONS = 3


def manifest_dir(path: str) -> str:
    return os.path.join(path, CLUSTER_DIR)


def is_cluster(path) -> bool:
    """Whether ``path`` holds a committed cluster manifest."""
    return manifest.read_current(manifest_dir(os.fspath(path))) is not None


def shard_dir(index: int) -> str:
    return f"shard-{index:03d}"


def create(path: str, config: dict, shards: int, model: Index) -> dict:
    """Write the model and the first manifest of a new cluster at ``path``; returns the body.
    CollectionExistsError when ``path`` already holds a cluster or collection."""
    mdir = manifest_dir(path)
    if is_cluster(path) or manifest.read_current(path) is not None:
        raise CollectionExistsError(f"A cluster or collection already exists at {path}.")
    os.makedirs(mdir, exist_ok=True)
    written = layout.write_files(mdir, config, 0, model=model)
    body = {"kind": KIND, "cluster_format": CLUSTER_FORMAT, "version": 1, "next_seq": written.next_seq,
            "files": written.files, "model": written.model, "collection": config,
            "shards": [shard_dir(i) for i in range(shards)], "routing": routing.RULE}
    return manifest.commit(mdir, body)


def load(path: str) -> dict:
    """The committed manifest of the cluster at ``path``, its format and files checked."""
    mdir = manifest_dir(path)
    if not is_cluster(path):
        raise CollectionNotFoundError(f"No cluster at {path} (no {CLUSTER_DIR}/CURRENT file).")
    body = manifest.load(mdir)
    if body.get("kind") != KIND:
        raise CorruptFileError(f"{mdir} holds a manifest that is not an annvq cluster's.")
    if body.get("cluster_format") != CLUSTER_FORMAT:
        raise UnsupportedFormatError(
            f"{mdir}: cluster format {body.get('cluster_format')!r}; this annvq reads format {CLUSTER_FORMAT}.")
    if body.get("routing") != routing.RULE:
        raise UnsupportedFormatError(f"{mdir}: routing {body.get('routing')!r}; this annvq routes by {routing.RULE}.")
    manifest.check_sizes(mdir, body["files"])
    return body


def read_model(path: str, body: dict) -> Index:
    return layout.read_model(manifest_dir(path), body["model"])


def update(path: str, body: dict, **changes) -> dict:
    """Commit the next manifest with ``changes`` (e.g. a new ``collection`` config)."""
    body = {k: v for k, v in body.items() if k != "fallback_from"}
    mdir = manifest_dir(path)
    body = manifest.commit(mdir, dict(body, version=body["version"] + 1, **changes))
    manifest.collect_garbage(mdir, KEEP_VERSIONS)
    return body
