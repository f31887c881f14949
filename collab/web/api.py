"""HTTP routes: health, readiness and the documents API."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .. import content, docid
from ..auth import OPEN
from ..content.parsers import Busy, Parsers
from ..documents import Documents
from ..plaintext import plain_text
from ..protocol import ProtocolError
from ..room import Room
from ..store import (
    DocumentDeleted,
    DocumentExists,
    DocumentInfo,
    DocumentNotFound,
    VersionInfo,
    VersionNotFound,
)
from .access import Access
from .errors import ApiError

log = logging.getLogger("collab.api")

MAX_PAGE = 500
MAX_LABEL = 200
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/api/stats", stats),
        Route("/api/session", session, methods=["GET"]),
        Route("/api/documents", list_documents, methods=["GET"]),
        Route("/api/documents", create_document, methods=["POST"]),
        Route("/api/documents/{doc_id}", get_document, methods=["GET"]),
        Route("/api/documents/{doc_id}", delete_document, methods=["DELETE"]),
        Route("/api/documents/{doc_id}/text", document_text, methods=["GET"]),
        Route("/api/documents/{doc_id}/content", get_content, methods=["GET"]),
        Route("/api/documents/{doc_id}/content", put_content, methods=["PUT"]),
        Route("/api/documents/{doc_id}/update", export_update, methods=["GET"]),
        Route("/api/documents/{doc_id}/update", import_update, methods=["POST"]),
        Route("/api/documents/{doc_id}/versions", list_versions, methods=["GET"]),
        Route("/api/documents/{doc_id}/versions", create_version, methods=["POST"]),
        Route("/api/documents/{doc_id}/versions/{vid}/update", version_update, methods=["GET"]),
        Route("/api/documents/{doc_id}/versions/{vid}/restore", restore_version, methods=["POST"]),
    ]


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    # The database's part is the state collab_database_healthy reports, the ping
    # refreshed first.
    failing = await _documents(request).problems()
    if failing:
        return JSONResponse({"status": "unavailable", "failing": failing}, 503)
    return JSONResponse({"status": "ready"})


async def stats(request: Request) -> Response:
    await _access(request).grant(request, "*")
    return JSONResponse(_documents(request).stats())


async def list_documents(request: Request) -> Response:
    grant = await _access(request).grant(request)
    limit = _int_param(request, "limit", 50, 1, MAX_PAGE)
    offset = _int_param(request, "offset", 0, 0, 2**31)
    documents = await _documents(request).list_documents(limit + 1, offset)
    # A page holds the documents the token covers among the next `limit` of all.
    visible = [_document(d) for d in documents[:limit] if grant.covers(d.id)]
    body: dict[str, Any] = {"documents": visible}
    body["next_offset"] = offset + limit if len(documents) > limit else None
    return JSONResponse(body)


async def create_document(request: Request) -> Response:
    body = await _json_object(request)
    doc_id = body.get("id")
    if doc_id is None:
        doc_id = secrets.token_urlsafe(9)
    if not isinstance(doc_id, str) or not docid.is_valid(doc_id):
        raise ApiError(400, "bad_doc_id", docid.RULE)
    await _access(request).grant(request, doc_id, write=True)
    try:
        info = await _documents(request).create(doc_id)
    except DocumentExists:
        raise ApiError(409, "exists", f"document {doc_id!r} already exists") from None
    return JSONResponse(_document(info), 201)


async def get_document(request: Request) -> Response:
    doc_id = await _doc_id(request)
    try:
        info = await _documents(request).info(doc_id)
    except (DocumentNotFound, DocumentDeleted):
        raise ApiError(404, "not_found", f"no document {doc_id!r}") from None
    return JSONResponse(_document(info))


async def delete_document(request: Request) -> Response:
    doc_id = await _doc_id(request, write=True)
    try:
        await _documents(request).delete(doc_id)
    except DocumentNotFound:
        raise ApiError(404, "not_found", f"no document {doc_id!r}") from None
    return Response(status_code=204)


async def document_text(request: Request) -> Response:
    async with _room(request) as room:
        state = room.doc.get_update()
    return PlainTextResponse(plain_text(state))


async def get_content(request: Request) -> Response:
    """The editor's content as text, ProseMirror JSON, HTML or Markdown."""
    format = request.query_params.get("format", "text")
    if format not in content.FORMATS:
        raise ApiError(400, "bad_format", f"format must be one of {', '.join(content.FORMATS)}")
    async with _room(request) as room:
        if format == "json":
            return JSONResponse(content.to_json(room.doc))
        render = {"text": content.to_text, "html": content.to_html}.get(format, content.to_markdown)
        body = render(room.doc)
    return Response(body, media_type=content.MEDIA_TYPES[format], headers=_CONTENT_HEADERS)


# Opened as a page on collab's origin, a document's HTML runs nothing and loads nothing
# but images, whatever a peer managed to put in it.
_CONTENT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src http: https:",
    "X-Content-Type-Options": "nosniff",
}


async def put_content(request: Request) -> Response:
    """Content in one of the four formats becomes the document's (or is appended to
    it) as one change: sent to live peers, stored, kept in history."""
    async with _room(request, write=True) as room:
        body = await _json_object(request)
        format = body.get("format")
        if format not in content.FORMATS:
            raise ApiError(400, "bad_format", f"format must be one of {', '.join(content.FORMATS)}")
        mode = body.get("mode", "replace")
        if mode not in content.MODES:
            raise ApiError(400, "bad_request", f"mode must be one of {', '.join(content.MODES)}")
        if "content" not in body:
            raise ApiError(400, "bad_content", "the body has no content")
        parsers: Parsers = request.app.state.parsers
        try:
            # Off the event loop: a hostile Markdown body can take markdown-it seconds,
            # and writing 20 000 paragraphs to Yjs one more.
            update = await parsers.change(room.doc.get_update(), format, body["content"], mode)
        except content.InvalidContent as exc:
            raise ApiError(400, "bad_content", str(exc)) from None
        except Busy as exc:
            raise ApiError(503, "busy", f"{exc}; try again later") from None
        await _documents(request).apply_change(room.doc_id, update, "api")
    log.info("content of %r written from %s (%s)", room.doc_id, format, mode)
    return JSONResponse({"format": format, "mode": mode, "applied": len(update)})


async def export_update(request: Request) -> Response:
    async with _room(request) as room:
        state = room.doc.get_update()
    return Response(state, media_type="application/octet-stream")


async def session(request: Request) -> Response:
    """Who the caller is, as its token or the host's sign-in says: the editor shows
    this name and skips asking for one. ``?doc=`` checks the grant covers that id."""
    doc_id = request.query_params.get("doc")
    if doc_id is not None and not docid.is_valid(doc_id):
        raise ApiError(400, "bad_doc_id", docid.RULE)
    grant = await _access(request).grant(request, doc_id)
    return JSONResponse(
        {
            "user": grant.sub,
            "name": grant.display_name,
            "mode": grant.mode.value,
            "anonymous": grant is OPEN or grant.anonymous,
            "expires_at": grant.exp,
            # Where the page renews its token (the host's URL); None: POST /api/token/renew.
            "refresh_url": request.app.state.settings.token_refresh_url or None,
        }
    )


async def import_update(request: Request) -> Response:
    """Merge a Yjs v1 update into the document: stored and sent to live peers."""
    doc_id = await _doc_id(request, write=True)  # the token first: nothing unauthorised is parsed
    settings = request.app.state.settings
    update = await _body(request, settings.max_message_size)
    try:
        await _documents(request).apply(doc_id, update, "api")
    except (DocumentDeleted, DocumentNotFound):
        raise ApiError(404, "not_found", f"no document {doc_id!r}") from None
    except ProtocolError as exc:
        raise ApiError(400, "bad_update", f"the body is not a Yjs v1 update: {exc}") from None
    return JSONResponse({"applied": len(update)})


async def list_versions(request: Request) -> Response:
    doc_id = await _doc_id(request)
    with _opened():
        versions = await _documents(request).versions(doc_id)
    return JSONResponse({"versions": [_version(v) for v in versions]})


async def create_version(request: Request) -> Response:
    body = await _json_object(request)
    label = body.get("label", "")
    # One line of text: PostgreSQL's text holds no NUL, and a list shows no control.
    if not isinstance(label, str) or len(label) > MAX_LABEL or _CONTROL.search(label):
        raise ApiError(
            400,
            "bad_label",
            f"label must be a line of at most {MAX_LABEL} characters, no control characters",
        )
    doc_id = await _doc_id(request, write=True)
    grant = await _access(request).grant(request, doc_id)
    with _opened():
        version = await _documents(request).save_version(doc_id, label=label, created_by=grant.sub)
    if version is None:
        raise ApiError(503, "unavailable", "the version could not be saved; try again")
    return JSONResponse(_version(version), 201)


async def version_update(request: Request) -> Response:
    doc_id = await _doc_id(request)
    with _opened():
        state = await _documents(request).version_state(doc_id, request.path_params["vid"])
    return Response(state, media_type="application/octet-stream")


async def restore_version(request: Request) -> Response:
    """The live content becomes the version's, for every peer, as a new change."""
    doc_id = await _doc_id(request, write=True)
    grant = await _access(request).grant(request, doc_id)
    vid = request.path_params["vid"]
    with _opened():
        backup = await _documents(request).restore(doc_id, vid, created_by=grant.sub)
    if backup is None:
        raise ApiError(503, "unavailable", "could not save the current content first")
    return JSONResponse({"restored": vid, "backup": _version(backup)})


def _version(info: VersionInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "created_at": info.created_at.isoformat(),
        "label": info.label,
        "created_by": info.created_by,
        "kind": info.kind,
        "size_bytes": info.size_bytes,
    }


def _documents(request: Request) -> Documents:
    documents: Documents = request.app.state.documents
    return documents


@contextlib.contextmanager
def _opened() -> Iterator[None]:
    """The documents service's refusals as API errors."""
    try:
        yield
    except (DocumentNotFound, DocumentDeleted):
        raise ApiError(404, "not_found", "no such document") from None
    except VersionNotFound:
        raise ApiError(404, "not_found", "no such version") from None


@contextlib.asynccontextmanager
async def _room(
    request: Request, *, write: bool = False, create: bool = False
) -> AsyncIterator[Room]:
    """The document's room, held for the duration (loaded if it was not open), once
    the caller's grant is checked. The document must exist, unless ``create``."""
    doc_id = await _doc_id(request, write=write)
    with _opened():
        async with _documents(request).open(doc_id, create=create) as room:
            yield room


async def _doc_id(request: Request, *, write: bool = False) -> str:
    """The route's document id, once the caller's token is checked for it."""
    doc_id: str = request.path_params["doc_id"]
    if not docid.is_valid(doc_id):
        raise ApiError(404, "not_found", "no such document")
    await _access(request).grant(request, doc_id, write=write)
    return doc_id


def _access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


def _document(info: DocumentInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "title": info.title,
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
        "size_bytes": info.size_bytes,
    }


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_request", f"{name} must be between {low} and {high}")
    return value


def body_type(path: str) -> str:
    """The media type a state-changing route at ``path`` takes (csrf.py refuses any
    other): the update import a Yjs update, every other route JSON."""
    return "application/octet-stream" if path.endswith("/update") else "application/json"


async def _json_object(request: Request) -> dict[str, Any]:
    limit: int = request.app.state.settings.max_json_body
    raw = await _body(request, limit)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "bad_json", "the request body is not valid JSON") from None
    except RecursionError:
        # The C decoder recurses once per level: a body nested thousands deep.
        raise ApiError(400, "bad_json", "the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the request body must be a JSON object")
    return body


async def _body(request: Request, limit: int) -> bytes:
    """The request body; ApiError 413 past ``limit`` bytes, before reading more."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"a request body may be at most {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "too_large", f"a request body may be at most {limit} bytes")
    return bytes(body)
