"""Payload indexes: declare or drop the payload fields that filters can use."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ..deps import CollectionDep, CollectionName, Writable
from ..errors import ApiError
from ..schemas import CollectionPublic, PayloadIndexCreate
from .collections import describe

router = APIRouter(prefix="/collections/{name}/payload-indexes", tags=["payload indexes"])

FieldName = Annotated[str, Path(description="The payload field: a top-level key of the payloads.")]


@router.put("/{field}", response_model=CollectionPublic, dependencies=[Writable])
def create_payload_index(name: CollectionName, field: FieldName, body: PayloadIndexCreate, col: CollectionDep):
    """Index payload `field` as `kind` so filters can use it: built from every stored payload,
    durable on return. A stored value of another kind is a 400 naming the point, and nothing
    changes. The same kind again does nothing; another kind rebuilds the index."""
    col.create_payload_index(field, body.kind)
    return describe(name, col)


@router.delete("/{field}", response_model=CollectionPublic, dependencies=[Writable])
def drop_payload_index(name: CollectionName, field: FieldName, col: CollectionDep):
    """Stop indexing `field`: filters on it are refused from then on. 404 if it is not indexed."""
    if field not in col.payload_indexes:
        raise ApiError(404, "payload_index_not_found",
                       f"Payload field {field!r} is not indexed in collection {name!r}; "
                       f"indexed: {sorted(col.payload_indexes)}.")
    col.drop_payload_index(field)
    return describe(name, col)
