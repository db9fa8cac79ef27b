"""Collection snapshots under ``data_dir/.snapshots/<collection>/<snapshot-id>``.

`Collection.snapshot` writes the consistent copy and its sha256 per file; a ``<snapshot-id>.json``
record beside the copy keeps those hashes, so a restore can prove the copy is intact before it
becomes a collection again (restore = a new collection from a snapshot)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path

from annvq.errors import CorruptFileError, InvalidParameterError

from .errors import ApiError
from .registry import Registry, check_name


def _root(registry: Registry, name: str) -> Path:
    return registry.data_dir / ".snapshots" / check_name(name)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def create(registry: Registry, name: str) -> dict:
    """Snapshot collection `name`; returns its record (id, created, files with sha256, stats)."""
    col = registry.get(name)
    now = datetime.now(timezone.utc)
    snap_id = f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
    root = _root(registry, name)
    root.mkdir(parents=True, exist_ok=True)
    info = col.snapshot(root / snap_id)
    record = {"id": snap_id, "collection": name, "created": now.isoformat(),
              "count": col.count, "spec": col.spec, "dim": col.dim, "metric": col.metric,
              "files": info["files"]}
    tmp = root / f".{snap_id}.json.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, root / f"{snap_id}.json")
    return record


def list_all(registry: Registry, name: str) -> list[dict]:
    """Records of every snapshot of `name`, oldest first (the collection may have been dropped)."""
    root = _root(registry, name)
    if not root.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(root.glob("*.json"))]


def restore(registry: Registry, name: str, snap_id: str, target: str):
    """A new collection `target` holding snapshot `snap_id` of `name`, after checking every hash."""
    check_name(snap_id, "snapshot id")
    registry.check_free(target)
    root = _root(registry, name)
    record_path = root / f"{snap_id}.json"
    if not record_path.is_file():
        raise ApiError(404, "snapshot_not_found", f"No snapshot {snap_id!r} of collection {name!r}.")
    record = json.loads(record_path.read_text())
    src = root / snap_id
    for rel, digest in record["files"].items():
        path = (src / rel).resolve()
        if not path.is_relative_to(src.resolve()):
            raise InvalidParameterError(f"Snapshot {snap_id!r} names a file outside itself: {rel!r}.")
        if not path.is_file() or _sha256(path) != digest:
            raise CorruptFileError(f"Snapshot {snap_id!r} file {rel!r} is missing or fails its sha256.")
    staged = registry.data_dir / f".restore-{target}-{secrets.token_hex(4)}"
    shutil.copytree(src, staged)
    try:
        return registry.adopt(target, staged)
    finally:
        if staged.exists():
            shutil.rmtree(staged)
