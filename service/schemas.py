"""Request and response bodies, one family per resource (Create / Public / list with `count`).

Request models forbid unknown fields (a typo is a 422, not a silently ignored option) and
vectors are lists of finite floats: pydantic accepts NaN and Infinity by default, and Python's
JSON parser reads the bare ``NaN`` token, so finiteness is declared on the type."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, StrictInt

from .settings import MAX_K

Vector = Annotated[list[FiniteFloat], Field(min_length=1)]
PointId = StrictInt
Payload = dict[str, Any] | None
PayloadKind = Literal["keyword", "integer", "float", "bool"]
# Any JSON value, refused with invalid_filter (400) unless an object or null: the library checks
# every key, field and value type and names the problem, so pydantic does not second-guess it.
Filter = Annotated[Any, Field(
    description="A Qdrant-style payload filter ({must, should, must_not} of conditions on indexed "
                "fields, see docs/service.md); null or {} for none.",
    json_schema_extra={"anyOf": [{"type": "object"}, {"type": "null"}],
                       "examples": [{"must": [{"key": "label", "match": {"value": 3}}]}]})]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(BaseModel):
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. dimension_mismatch.")
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The one shape of every error response."""

    error: ErrorDetail


# collections ---------------------------------------------------------------------------------

class CollectionCreate(Request):
    dim: int = Field(ge=1, le=65536, description="Vector dimension.")
    metric: Literal["l2", "ip", "cosine"] = "l2"
    spec: str = Field("IVF1024,SAQ4", max_length=200,
                      description="Index spec: [OPQ{M},][IVF{nlist},]CODEC[,Rerank].")
    store_vectors: bool = Field(True, description="Keep raw vectors (rerank, exact search, get).")
    train_threshold: int | None = Field(None, ge=1, description="Train once this many points exist.")
    seed: int = Field(0, ge=0)
    payload_indexes: dict[str, PayloadKind] = Field(
        default_factory=dict, description="Payload fields to index, {field: kind}: what filters can use.")


class CollectionPublic(BaseModel):
    name: str
    dim: int
    metric: str
    spec: str
    count: int
    trained: bool
    read_only: bool
    payload_indexes: dict[str, str] = Field(description="Indexed payload fields, {field: kind}.")
    stats: dict[str, Any]


class PayloadIndexCreate(Request):
    kind: PayloadKind = Field(description="keyword (string), integer, float or bool.")


class CollectionsPublic(BaseModel):
    data: list[CollectionPublic]
    count: int


# points --------------------------------------------------------------------------------------

class PointsUpsert(Request):
    ids: list[PointId] = Field(min_length=1)
    vectors: list[Vector] = Field(min_length=1, description="One vector per id, row-wise.")
    payloads: list[Payload] | None = Field(None, description="One JSON object (or null) per id.")


class PointIds(Request):
    ids: list[PointId] = Field(min_length=1)


class PointsGet(PointIds):
    with_vector: bool = True
    with_payload: bool = True


class PointPublic(BaseModel):
    id: int
    vector: list[float] | None = None
    payload: dict[str, Any] | None = None


class PointsPublic(BaseModel):
    data: list[PointPublic]
    count: int


class UpsertResult(BaseModel):
    upserted: int
    count: int


class DeleteResult(BaseModel):
    deleted: int
    count: int


class PointsCount(Request):
    filter: Filter = None


class CountResult(BaseModel):
    count: int = Field(description="Live points that pass the filter (all of them without one).")


class PointsScroll(Request):
    filter: Filter = None
    limit: int = Field(100, ge=1, le=10_000, description="Points per page.")
    cursor: int | None = Field(None, ge=0, description="Start at this id: the previous page's next_cursor.")
    with_payload: bool = True
    with_vector: bool = False


class ScrollPage(PointsPublic):
    """Matching points in id order from `cursor` on; pass `next_cursor` back for the next page."""

    next_cursor: int | None = Field(description="The id the next page starts at; null after the last page.")


# query ---------------------------------------------------------------------------------------

class SearchParams(BaseModel):
    """nprobe, rerank and exact, plus any codec knob (e.g. SAQ's ``m``), checked by the index."""

    model_config = ConfigDict(extra="allow")
    nprobe: int | None = Field(None, ge=1)
    rerank: int | None = Field(None, ge=0)
    exact: bool = False


class QueryOptions(Request):
    k: int = Field(10, ge=1, le=MAX_K)
    params: SearchParams = Field(default_factory=SearchParams)
    filter: Filter = None
    with_payload: bool = True
    with_vector: bool = False


class Query(QueryOptions):
    vector: Vector


class QueryBatch(QueryOptions):
    vectors: list[Vector] = Field(min_length=1)


class Coverage(BaseModel):
    """Which shards of a sharded collection (``annvq serve --ray``) answered a search."""

    shards: int
    answered: int
    missing: list[int] = Field(description="Shards that gave no answer in time: their points are absent.")
    complete: bool
    reasons: dict[str, str] = Field(description="Why each missing shard is missing, by shard number.")


class Hits(BaseModel):
    """Neighbours best first; fewer than k when the collection holds fewer matching points."""

    ids: list[int]
    distances: list[float]
    payloads: list[Payload] | None = None
    vectors: list[list[float] | None] | None = None
    found: int = Field(description="How many hits this query has: k unless fewer points match.")
    nprobe: int = Field(description="Inverted lists this query read (a filter may read more).")
    strategy: str = Field(description='How the search ran: "ivf", "ivf-raw", "flat" or "exact", joined by "+" when parts differ (docs/service.md).')
    coverage: Coverage | None = Field(None, description="Sharded collections only: a partial answer "
                                                        "(complete false) lists the shards missing from it.")


class QueryResult(Hits):
    took_ms: float


class BatchResult(BaseModel):
    results: list[Hits]
    took_ms: float


# admin ---------------------------------------------------------------------------------------

class SnapshotPublic(BaseModel):
    id: str
    collection: str
    created: str
    count: int
    spec: str
    dim: int
    metric: str
    files: dict[str, str] = Field(description="File name -> sha256.")


class SnapshotsPublic(BaseModel):
    data: list[SnapshotPublic]
    count: int


class SnapshotRestore(Request):
    target: str | None = Field(None, description="New collection name (default: the source name).")


# health --------------------------------------------------------------------------------------

class Ready(BaseModel):
    status: Literal["ready", "starting"]
    collections: list[str]
    failed: dict[str, str]
