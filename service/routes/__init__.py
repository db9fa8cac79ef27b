"""One router per resource; `api_router` gathers those under /v1 behind the API-key guard."""

from fastapi import APIRouter, Depends

from ..deps import require_api_key
from ..schemas import ErrorResponse
from . import admin, collections, points, query

ERRORS = {400: "Bad value: wrong dimension, NaN/Inf, out of range", 401: "Missing or wrong API key",
          403: "Server is read-only", 404: "Unknown collection, point or snapshot",
          409: "Collection exists", 413: "Body too large", 422: "Body does not match the schema"}
api_router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)],
                       responses={code: {"model": ErrorResponse, "description": text}
                                  for code, text in ERRORS.items()})
for module in (collections, points, query, admin):
    api_router.include_router(module.router)
