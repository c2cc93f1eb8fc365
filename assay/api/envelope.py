"""Assemblyline's response envelope, for answers and for every kind of error.

Whatever goes wrong, the caller gets ``{"api_response", "api_error_message",
"api_server_version", "api_status_code"}`` with a message written for people; no stack trace
ever leaves the server.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from assay import __version__, fastjson

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raise to answer with ``status`` and ``message`` in the envelope."""

    def __init__(self, status: int, message: str, response: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.response = response


def envelope(response: Any, status: int = 200, message: str = "") -> dict[str, Any]:
    return {
        "api_response": response,
        "api_error_message": message,
        "api_server_version": __version__,
        "api_status_code": status,
    }


class FastJSONResponse(JSONResponse):
    """A JSON answer rendered by orjson (notification pages can hold a thousand messages)."""

    def render(self, content: Any) -> bytes:
        return fastjson.dumps_bytes(content)


def ok(response: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return FastJSONResponse(envelope(response, status), status_code=status, headers=headers)


def error(status: int, message: str, response: Any = None) -> JSONResponse:
    return FastJSONResponse(envelope(response, status, message), status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for item in exc.errors()[:3]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI, is_envelope_path: Any) -> None:
    """Register the handlers; ``is_envelope_path(path)`` says which dialect answers an error."""

    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _answer(request, exc.status, exc.message, exc.response)

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such API endpoint: {request.method} {request.url.path}"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return _answer(request, exc.status_code, detail)

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _answer(request, 400, _validation_message(exc))

    async def on_unstorable(request: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL refuses what SQLite takes (NUL characters, numbers beyond a column's range):
        # the request is at fault, not the server.
        log.info("refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
        message = "the request holds a value the database cannot store (a NUL character, a number out of range)"
        return _answer(request, 400, message)

    async def on_database_away(request: Request, exc: OperationalError) -> JSONResponse:
        # Away, or locked for too long: Assemblyline clients retry a 503 (unless it speaks of a quota).
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return _answer(request, 503, "Server busy: the database is unavailable or busy; try again")

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _answer(request, 500, "internal error; the server log has the details")

    def _answer(request: Request, status: int, message: str, response: Any = None) -> JSONResponse:
        if is_envelope_path(request.url.path):
            return error(status, message, response)
        return JSONResponse({"message": message}, status_code=status)

    app.add_exception_handler(ApiError, on_api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(DataError, on_unstorable)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, on_database_away)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_crash)
