"""JSON errors: {"error": "<machine word>", "detail": "<human sentence>"}."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def error_body(error: str, detail: str) -> dict[str, str]:
    return {"error": error, "detail": detail}


async def api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.error, exc.detail), exc.status)


_WORDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    word = _WORDS.get(exc.status_code, "error")
    return JSONResponse(error_body(word, str(exc.detail)), exc.status_code, headers=exc.headers)
