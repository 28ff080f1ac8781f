"""Errors as the API sends them: `{"error": {"message": one line, "type": ...}}` with a status that says whose fault
it is; never a traceback (an unexpected error is logged, and the client reads "internal server error")."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mmrag.core.errors import (
    MmragError,
    ModelUnavailableError,
    ServerStartError,
    ServerUnavailableError,
    WeaviateUnavailableError,
    one_line,
)
from mmrag.indexer.uploads import UploadTooLargeError

log = logging.getLogger(__name__)


class UnknownJobError(MmragError):
    """No indexing job has this id (or it finished long ago and was forgotten)."""


class UnknownModelError(MmragError):
    """A chat request names a model the server does not serve."""


def status_of(error: MmragError) -> int:
    from mmrag.indexer.store import CollectionMismatchError, UnknownCollectionError, UnknownObjectError

    if isinstance(error, UnknownCollectionError | UnknownObjectError | UnknownJobError | UnknownModelError):
        return 404
    if isinstance(error, UploadTooLargeError):
        return 413
    if isinstance(error, CollectionMismatchError):
        return 409
    if isinstance(error, WeaviateUnavailableError | ServerStartError | ModelUnavailableError | ServerUnavailableError):
        return 503
    return 400


def error_body(error: BaseException) -> dict[str, Any]:
    """`{"error": {"message", "type"}}`: an MmragError's one line, else a generic message (details go to the log)."""
    if isinstance(error, MmragError):
        return {"error": {"message": one_line(str(error)) or type(error).__name__, "type": type(error).__name__}}
    return {"error": {"message": "internal server error (see the server's log)", "type": "InternalError"}}


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": one_line(message), "type": kind}}, status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MmragError)
    async def mmrag_error(request: Request, error: MmragError) -> JSONResponse:
        return JSONResponse(error_body(error), status_code=status_of(error))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in error.errors()
        )
        return _error(400, f"invalid request: {problems}", "InvalidRequest")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        kind = HTTPStatus(error.status_code).phrase.replace(" ", "")  # Unauthorized, NotFound, MethodNotAllowed
        return _error(error.status_code, str(error.detail), kind, getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return JSONResponse(error_body(error), status_code=500)
