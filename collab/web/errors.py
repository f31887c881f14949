"""JSON errors: {"error": "<machine word>", "detail": "<human sentence>"}."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("collab.api")

# Refusals of a caller's input or credentials: each gets one warning line.
_REFUSALS = frozenset((400, 401, 403, 413, 415, 429))


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def error_body(error: str, detail: str) -> dict[str, str]:
    return {"error": error, "detail": detail}


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    client = f"{request.client.host}:{request.client.port}" if request.client else "unknown"
    fields = {"client": client, "status": exc.status, "error": exc.error}
    doc_id = request.path_params.get("doc_id")
    if isinstance(doc_id, str):
        fields["doc"] = doc_id[:200]
    log.log(
        logging.WARNING if exc.status in _REFUSALS else logging.INFO,
        "refused %s %s from %s: %d %s: %s",
        request.method,
        request.url.path[:200],
        client,
        exc.status,
        exc.error,
        exc.detail,
        extra=fields,
    )
    return JSONResponse(error_body(exc.error, exc.detail), exc.status)


_WORDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    word = _WORDS.get(exc.status_code, "error")
    return JSONResponse(error_body(word, str(exc.detail)), exc.status_code, headers=exc.headers)
