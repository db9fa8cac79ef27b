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

log = logging.getLogger("annvq.service")


class ApiError(Exception):
    """A request-level failure raised by the service itself (unknown point, bad API key...)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


# The HTTP status of each domain error; its code is the library's (`annvq.errors.CODES`). The
# first class in an exception's MRO found here decides.
DOMAIN_STATUS: dict[type[Exception], int] = {
    E.CollectionNotFoundError: 404,
    E.CollectionExistsError: 409,
    E.CollectionLockedError: 409,
    E.CollectionClosedError: 404,  # dropped while this request ran
    E.ReadOnlyError: 403,
    E.NotTrainedError: 409,
    E.CorruptFileError: 500,
    E.UnsupportedFormatError: 500,
    E.InvalidFileError: 500,
    E.StorageError: 500,
    E.UnsupportedOperationError: 501,
    E.ShardUnavailableError: 503,
    E.AnnvqError: 400,
}

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "body_too_large",
              415: "unsupported_media_type", 501: "unsupported", 503: "not_ready"}

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
    """(HTTP status, code) of a domain error: each from the most specific class that has one."""
    mro = type(exc).__mro__
    status = next((DOMAIN_STATUS[c] for c in mro if c in DOMAIN_STATUS), None)
    code = next((E.CODES[c] for c in mro if c in E.CODES), None)
    return (500, "internal_error") if status is None else (status, code)


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
