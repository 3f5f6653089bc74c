"""One error shape for every failure: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from corral.cluster.records import UnreadableRecord


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident} does not exist")


def conflict(message: str, field: str | None = None) -> ApiError:
    return ApiError(409, "conflict", message, field)


def invalid(message: str, field: str | None = None) -> ApiError:
    return ApiError(422, "invalid", message, field)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def loc_to_field(loc: Sequence[int | str]) -> str | None:
    """('body', 'disks', 0) -> 'disks[0]'; the leading body/query/path part is dropped."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or None


def _validation_message(err: dict[str, Any], field: str | None) -> str:
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{field}: {msg}" if field else msg


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status)

    @app.exception_handler(UnreadableRecord)
    async def _unreadable(_: Request, exc: UnreadableRecord) -> JSONResponse:
        # The record exists (so not 404) but this version cannot decode it: a state of the
        # cluster to repair or upgrade through, not a server fault.
        return JSONResponse(error_body("unreadable_record", f"the record does not decode: {exc}"),
                            status_code=409)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {}
        # A JSON syntax error's loc is a character offset, not a field.
        field = None if first.get("type") == "json_invalid" else loc_to_field(first.get("loc", ()))
        return JSONResponse(
            error_body("invalid", _validation_message(first, field), field), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
