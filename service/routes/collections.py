"""Collections: create, describe, list, drop."""

from __future__ import annotations

from fastapi import APIRouter

from annvq import Collection
from annvq.errors import CollectionNotFoundError

from ..deps import CollectionDep, CollectionName, RegistryDep, Writable
from ..schemas import CollectionCreate, CollectionPublic, CollectionsPublic, Message

router = APIRouter(prefix="/collections", tags=["collections"])


def describe(name: str, col: Collection) -> CollectionPublic:
    return CollectionPublic(name=name, dim=col.dim, metric=col.metric, spec=col.spec,
                            count=col.count, trained=col.is_trained, read_only=col.read_only,
                            payload_indexes=col.payload_indexes, stats=col.stats())


@router.get("", response_model=CollectionsPublic)
def list_collections(registry: RegistryDep):
    data = []
    for name in registry.names():
        try:
            data.append(describe(name, registry.get(name)))
        except CollectionNotFoundError:  # dropped while we listed
            continue
    return CollectionsPublic(data=data, count=len(data))


@router.put("/{name}", response_model=CollectionPublic, status_code=201, dependencies=[Writable])
def create_collection(name: CollectionName, body: CollectionCreate, registry: RegistryDep):
    """Create an empty collection. It trains itself once `train_threshold` points exist
    (or on ``POST .../train``); until then every search is exact. `payload_indexes` declares the
    payload fields filters can use (more later with ``PUT .../payload-indexes/{field}``)."""
    col = registry.create(name, **body.model_dump())
    return describe(name, col)


@router.get("/{name}", response_model=CollectionPublic)
def get_collection(name: CollectionName, col: CollectionDep):
    return describe(name, col)


@router.delete("/{name}", response_model=Message, dependencies=[Writable])
def drop_collection(name: CollectionName, registry: RegistryDep):
    """Delete the collection and its files; its snapshots are kept and can be restored."""
    registry.drop(name)
    return Message(message=f"Collection {name!r} deleted.")
