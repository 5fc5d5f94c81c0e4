"""Errors as KFP's API server reports them, so `kfp.Client` and scripts parse them unchanged.

KFP's server answers an error with `{"error", "code", "message", "details"}`: `code` is the gRPC
status code, `error` and `message` carry the same text. Every failure the control plane returns has
this shape — a client mistake is a 4xx naming what is wrong, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowdeck.profiles.tokens import redact

logger = logging.getLogger("flowdeck.controlplane")

#: HTTP status -> gRPC status code, as grpc-gateway maps them.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 6, 412: 9, 413: 3, 415: 3, 422: 3, 429: 8,
              500: 13, 501: 12, 503: 14, 504: 4}


class ApiError(Exception):
    """A failure to report to the caller: HTTP `status` and one line saying what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DomainErrorRoute(APIRoute):
    """A route whose handlers raise their domain's own exceptions, turned into `ApiError`s here.

    Subclasses list the exceptions in `statuses`, so no handler repeats try/except blocks and no client
    mistake surfaces as a 500. Query and path parameters holding a NUL byte are refused first
    (PostgreSQL can neither compare nor store one), and a value the database refuses all the same
    (`DataError`) is a 400 too.
    """

    #: (exception type, HTTP status) pairs; the first that matches an exception decides.
    statuses: ClassVar[tuple[tuple[type[Exception], int], ...]] = ()

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        statuses = (*self.statuses, (DataError, 400))
        caught = tuple(kind for kind, _ in statuses)

        async def route(request: Request) -> Response:
            refuse_nul_bytes(request)
            try:
                return await handler(request)
            except caught as exc:
                status = next(code for kind, code in statuses if isinstance(exc, kind))
                raise ApiError(status, error_message(exc)) from None

        return route


def refuse_nul_bytes(request: Request) -> None:
    """A 400 for a path or query parameter holding a NUL byte (PostgreSQL can neither compare nor store one)."""
    for kind, items in (("path", request.path_params.items()), ("query", request.query_params.multi_items())):
        for name, value in items:
            if "\x00" in str(value):
                raise ApiError(400, f"{kind} parameter {name}: must not contain a NUL byte")


def error_message(exc: BaseException) -> str:
    """The first line of an exception's text (its type's name when it has none); a database's own words."""
    if isinstance(exc, DataError):
        return f"invalid value: {error_message(exc.orig)}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def error_body(status: int, message: str) -> dict[str, Any]:
    code = GRPC_CODES.get(status, 2)
    message = redact(message)  # an error that repeats what was sent (an id, a name) never repeats an API token
    return {
        "error": message,
        "code": code,
        "message": message,
        "details": [{"@type": "type.googleapis.com/google.rpc.Status", "code": code, "message": message}],
    }


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def describe_validation_error(exc: RequestValidationError) -> str:
    """One line naming the first invalid field: `body.runtime_config.parameters: Input should be ...`."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    location = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
    where = {"query": "query parameter ", "path": "path parameter "}.get(str((first.get("loc") or ("",))[0]), "")
    text = first.get("msg", "invalid value")
    if first.get("type") == "json_invalid":
        return f"request body is not valid JSON: {first.get('ctx', {}).get('error', text)}"
    if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):
        return "request body is required (JSON)"
    return f"{where}{location}: {text}" if location else text


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, describe_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error")
        return error_response(500, f"internal error: {type(exc).__name__}")
