"""One JSON error shape for every endpoint.

    {"error": {"code": "batch_too_large", "message": "...", "details": [{"loc": [...], "msg": "..."}]}}

``code`` is machine-readable and stable; ``message`` is for people; ``details`` names the rule,
event index or field when there is one.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "ErrorBody", "install_error_handlers", "error_responses"]


class ApiError(Exception):
    """Raise from a route to answer with the shared error shape."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


def _body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def ErrorBody(code: str, message: str) -> dict[str, Any]:  # noqa: N802 - used as an OpenAPI example
    return _body(code, message)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error shape for the given statuses."""
    examples = {
        400: ("bad_request", "The request could not be parsed."),
        401: ("unauthenticated", "Missing or invalid credentials."),
        403: ("forbidden", "Not allowed."),
        404: ("not_found", "No such resource."),
        409: ("conflict", "Conflicts with the current state."),
        413: ("payload_too_large", "The request body exceeds the limit."),
        422: ("validation_failed", "The request does not match the schema."),
        503: ("unavailable", "A backing service is unreachable; retry later."),
        504: ("deadline_exceeded", "No reply before the deadline."),
    }
    return {
        s: {"description": examples[s][1], "content": {"application/json": {"example": _body(*examples[s])}}}
        for s in statuses
    }


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        details.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")})
    return details


def install_error_handlers(app: FastAPI) -> None:
    """Route every error (ours, validation, HTTP, unexpected) through the shared shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return JSONResponse(_body("malformed_json", "The body is not valid JSON.", details), status_code=400)
        first = details[0] if details else {"loc": [], "msg": ""}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return JSONResponse(
            _body("validation_failed", f"{where or 'body'}: {first['msg']}", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - last resort
        return JSONResponse(_body("internal_error", f"{type(exc).__name__}"), status_code=500)
