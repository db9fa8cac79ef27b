"""One error shape for every failure, ``{"error": {"code", "message", "details"}}``.

Domain exceptions from `annvq.errors` are mapped to HTTP statuses here, once, so neither the
library nor the route handlers deal with status codes for them."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from annvq import errors as E
from annvq.filters import InvalidFilterError

log = logging.getLogger("annvq.service")


class ApiError(Exception):
    """A request-level failure raised by the service itself (unknown point, bad API key...)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


# Most specific class first; the first class in an exception's MRO found here decides.
DOMAIN_STATUS: dict[type[Exception], tuple[int, str]] = {
    E.CollectionNotFoundError: (404, "collection_not_found"),
    E.CollectionExistsError: (409, "collection_exists"),
    E.CollectionLockedError: (409, "collection_locked"),
    E.CollectionClosedError: (404, "collection_not_found"),  # dropped while this request ran
    E.ReadOnlyError: (403, "read_only"),
    E.DimensionMismatchError: (400, "dimension_mismatch"),
    E.InvalidVectorsError: (400, "invalid_vectors"),
    InvalidFilterError: (400, "invalid_filter"),  # before its base class, InvalidParameterError
    E.InvalidParameterError: (400, "invalid_parameter"),
    E.InvalidSpecError: (400, "invalid_spec"),
    E.NotTrainedError: (409, "not_trained"),
    E.CorruptFileError: (500, "corrupt_file"),
    E.UnsupportedFormatError: (500, "unsupported_format"),
    E.InvalidFileError: (500, "invalid_file"),
    E.StorageError: (500, "storage_error"),
    E.AnnvqError: (400, "bad_request"),
}

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "body_too_large",
              415: "unsupported_media_type", 503: "not_ready"}

# Pydantic error types that mean "a well-formed value the service refuses" (400), as opposed
# to a body that does not match the schema at all (422).
VALUE_ERRORS = {"finite_number": "non_finite_value", "greater_than": "out_of_range",
                "greater_than_equal": "out_of_range", "less_than": "out_of_range",
                "less_than_equal": "out_of_range"}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}},
                        status_code=status, headers=headers)


def domain_status(exc: Exception) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return 500, "internal_error"


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, exc.message, exc.details, headers)


async def _domain_error(request: Request, exc: E.AnnvqError) -> JSONResponse:
    status, code = domain_status(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(status, code, str(exc), {"type": type(exc).__name__})


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Keep loc/msg/type only: "input" can echo a whole vector and "ctx" may hold exceptions.
    details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
               for e in exc.errors()]
    codes = {VALUE_ERRORS.get(d["type"]) for d in details}
    if details and None not in codes:
        code = "non_finite_value" if "non_finite_value" in codes else "out_of_range"
        first = details[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "body"
        return error_response(400, code, f"{where}: {first['msg']}", details)
    return error_response(422, "validation_error", "The request does not match the schema.", details)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return error_response(500, "internal_error", "Internal server error; see the server log.")


def install(app: FastAPI) -> None:
    """Register every handler on `app`."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(E.AnnvqError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
