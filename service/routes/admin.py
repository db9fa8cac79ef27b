"""Maintenance: train, persist, compact, snapshots and restore."""

from __future__ import annotations

from fastapi import APIRouter, Body, Path

from .. import snapshots
from ..deps import CollectionDep, CollectionName, RegistryDep, Writable
from ..schemas import CollectionPublic, SnapshotPublic, SnapshotRestore, SnapshotsPublic
from .collections import describe

router = APIRouter(prefix="/collections/{name}", tags=["admin"])


@router.post("/train", response_model=CollectionPublic, dependencies=[Writable])
def train(name: CollectionName, col: CollectionDep):
    """Train the index on the points stored now (also automatic at `train_threshold`)."""
    col.train()
    return describe(name, col)


@router.post("/persist", response_model=CollectionPublic, dependencies=[Writable])
def persist(name: CollectionName, col: CollectionDep):
    """Make every upsert and delete so far durable (the buffer becomes a segment)."""
    col.persist()
    return describe(name, col)


@router.post("/compact", response_model=CollectionPublic, dependencies=[Writable])
def compact(name: CollectionName, col: CollectionDep):
    """Merge segments and drop tombstoned points."""
    col.compact()
    return describe(name, col)


@router.post("/snapshots", response_model=SnapshotPublic, status_code=201, dependencies=[Writable])
def create_snapshot(name: CollectionName, registry: RegistryDep):
    """A consistent copy under ``DATA_DIR/.snapshots/<name>/<id>`` with each file's sha256."""
    return snapshots.create(registry, name)


@router.get("/snapshots", response_model=SnapshotsPublic)
def list_snapshots(name: CollectionName, registry: RegistryDep):
    """Snapshots of `name`, oldest first; listed even after the collection was dropped."""
    data = snapshots.list_all(registry, name)
    return SnapshotsPublic(data=data, count=len(data))


@router.post("/snapshots/{snapshot_id}/restore", response_model=CollectionPublic, status_code=201,
             dependencies=[Writable])
def restore_snapshot(name: CollectionName, registry: RegistryDep,
                     snapshot_id: str = Path(description="An id from GET .../snapshots."),
                     body: SnapshotRestore = Body(default_factory=SnapshotRestore)):
    """Create collection `target` (default: `name`, after it was dropped) from a snapshot whose
    files all match their recorded sha256."""
    target = body.target or name
    return describe(target, snapshots.restore(registry, name, snapshot_id, target))
