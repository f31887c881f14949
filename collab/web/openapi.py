"""The OpenAPI description of the HTTP API, served at /openapi.json. A test checks
that it names exactly the routes the app serves."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__, docid

_DOC_ID = {
    "name": "doc_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{docid.DOC_ID.pattern}$"},
}
_VID = {"name": "vid", "in": "path", "required": True, "schema": {"type": "string"}}
_ERROR = {
    "description": "an error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


def _json(schema: str, description: str = "OK") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _ERROR for code in codes}


_AUTH = (401, 403)  # 403 also for a request from another origin (csrf.py)

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "collab",
        "version": __version__,
        "description": "Documents, versions and operations of a collab server. Documents are "
        "edited live over the y-websocket protocol at /ws/{doc_id}.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "detail"],
                "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
            },
            "Document": {
                "type": "object",
                "required": ["id", "title", "created_at", "updated_at", "size_bytes"],
                "properties": {
                    "id": {"type": "string"},
                    "title": {
                        "type": "string",
                        "maxLength": 200,
                        "description": "the content's first line that is not blank; empty if none",
                    },
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "size_bytes": {"type": "integer"},
                },
            },
            "Session": {
                "type": "object",
                "required": ["user", "name", "mode", "anonymous", "expires_at", "refresh_url"],
                "properties": {
                    "user": {"type": "string"},
                    "name": {"type": "string"},
                    "mode": {"type": "string", "enum": ["rw", "ro"]},
                    "anonymous": {"type": "boolean"},
                    "expires_at": {"type": "number", "nullable": True},
                    "refresh_url": {"type": "string", "nullable": True},
                },
            },
            "DocumentList": {
                "type": "object",
                "required": ["documents", "next_offset"],
                "properties": {
                    "documents": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Document"},
                    },
                    "next_offset": {"type": "integer", "nullable": True},
                },
            },
            "Version": {
                "type": "object",
                "required": ["id", "created_at", "label", "created_by", "kind", "size_bytes"],
                "properties": {
                    "id": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "label": {"type": "string"},
                    "created_by": {"type": "string"},
                    "kind": {"type": "string", "enum": ["manual", "auto", "restore"]},
                    "size_bytes": {"type": "integer"},
                },
            },
            "VersionList": {
                "type": "object",
                "required": ["versions"],
                "properties": {
                    "versions": {"type": "array", "items": {"$ref": "#/components/schemas/Version"}}
                },
            },
            "Restored": {
                "type": "object",
                "required": ["restored", "backup"],
                "properties": {
                    "restored": {"type": "string"},
                    "backup": {"$ref": "#/components/schemas/Version"},
                },
            },
            "Status": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"type": "string"},
                    "failing": {
                        "type": "object",
                        "description": "the parts that fail, each with why",
                        "additionalProperties": {"type": "string"},
                    },
                },
            },
            "Stats": {
                "type": "object",
                "required": ["rooms", "peers", "unwritten_updates", "processes", "peers_by_room"],
                "properties": {
                    "rooms": {"type": "integer"},
                    "peers": {"type": "integer"},
                    "unwritten_updates": {"type": "integer"},
                    "processes": {
                        "type": "integer",
                        "description": "collab processes serving with this one, itself included",
                    },
                    "peers_by_room": {
                        "type": "object",
                        "additionalProperties": {"type": "integer"},
                    },
                },
            },
            "ContentApplied": {
                "type": "object",
                "required": ["format", "mode", "applied"],
                "properties": {
                    "format": {"type": "string"},
                    "mode": {"type": "string"},
                    "applied": {"type": "integer", "description": "bytes of the change"},
                },
            },
            "Share": {
                "type": "object",
                "required": ["token", "url", "mode", "expires_at"],
                "properties": {
                    "token": {"type": "string", "description": "for this document alone"},
                    "url": {"type": "string", "description": "the editor on it, with the token"},
                    "mode": {"type": "string", "enum": ["rw", "ro"]},
                    "expires_at": {"type": "number"},
                },
            },
            "Renewed": {
                "type": "object",
                "required": ["token", "expires_at"],
                "properties": {"token": {"type": "string"}, "expires_at": {"type": "number"}},
            },
            "Applied": {
                "type": "object",
                "required": ["applied"],
                "properties": {"applied": {"type": "integer", "description": "bytes merged"}},
            },
        },
    },
    "security": [{}, {"bearer": []}],
    "paths": {
        "/healthz": {
            "get": {"summary": "the process serves", "responses": {"200": _json("Status")}}
        },
        "/readyz": {
            "get": {
                "summary": "the database answers, writes keep up, and so does Redis if configured",
                "responses": {"200": _json("Status"), "503": _json("Status", "not ready")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text format", "content": {"text/plain": {}}}},
            }
        },
        "/openapi.json": {
            "get": {"summary": "this description", "responses": {"200": {"description": "OK"}}}
        },
        "/api/stats": {
            "get": {
                "summary": "rooms and peers of this process",
                "responses": {"200": _json("Stats"), **_errors(*_AUTH)},
            }
        },
        "/api/session": {
            "get": {
                "summary": "who the caller is: the grant of its token or the host's sign-in",
                "parameters": [{"name": "doc", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _json("Session"), **_errors(400, *_AUTH)},
            }
        },
        "/api/documents": {
            "get": {
                "summary": "list documents, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {"200": _json("DocumentList"), **_errors(400, *_AUTH)},
            },
            "post": {
                "summary": "create a document (an id is generated if none is given)",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"id": {"type": "string"}}}
                        }
                    }
                },
                "responses": {
                    "201": _json("Document", "created"),
                    **_errors(400, *_AUTH, 409, 413, 415),
                },
            },
        },
        "/api/documents/{doc_id}": {
            "parameters": [_DOC_ID],
            "get": {
                "summary": "a document",
                "responses": {"200": _json("Document"), **_errors(*_AUTH, 404)},
            },
            "delete": {
                "summary": "delete and tombstone a document; live peers are closed with 4410",
                "responses": {"204": {"description": "deleted"}, **_errors(*_AUTH, 404)},
            },
        },
        "/api/documents/{doc_id}/text": {
            "parameters": [_DOC_ID],
            "get": {
                "summary": "the editor's content as plain text",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(*_AUTH, 404),
                },
            },
        },
        "/api/documents/{doc_id}/content": {
            "parameters": [_DOC_ID],
            "get": {
                "summary": "the editor's content as text, ProseMirror JSON, HTML or Markdown",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["text", "json", "html", "markdown"]},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "object"}},
                            "text/html": {"schema": {"type": "string"}},
                            "text/markdown": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, *_AUTH, 404),
                },
            },
            "put": {
                "summary": "content in one of the formats replaces (or is appended to) the "
                "document's, as one change",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["format", "content"],
                                "properties": {
                                    "format": {
                                        "type": "string",
                                        "enum": ["text", "json", "html", "markdown"],
                                    },
                                    "content": {},
                                    "mode": {"type": "string", "enum": ["replace", "append"]},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json("ContentApplied", "applied"),
                    **_errors(400, *_AUTH, 404, 413, 415, 503),
                },
            },
        },
        "/api/documents/{doc_id}/update": {
            "parameters": [_DOC_ID],
            "get": {
                "summary": "the whole document as one Yjs v1 update",
                "responses": {
                    "200": {"description": "OK", "content": _BINARY},
                    **_errors(*_AUTH, 404),
                },
            },
            "post": {
                "summary": "merge a Yjs v1 update: stored and sent to live peers",
                "requestBody": {"required": True, "content": _BINARY},
                "responses": {
                    "200": _json("Applied", "applied"),
                    **_errors(400, *_AUTH, 404, 413, 415),
                },
            },
        },
        "/api/documents/{doc_id}/versions": {
            "parameters": [_DOC_ID],
            "get": {
                "summary": "versions, newest first",
                "responses": {"200": _json("VersionList"), **_errors(*_AUTH, 404)},
            },
            "post": {
                "summary": "save the current content as a named version",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"label": {"type": "string", "maxLength": 200}},
                            }
                        }
                    }
                },
                "responses": {
                    "201": _json("Version", "created"),
                    **_errors(400, *_AUTH, 404, 413, 415, 503),
                },
            },
        },
        "/api/documents/{doc_id}/versions/{vid}/update": {
            "parameters": [_DOC_ID, _VID],
            "get": {
                "summary": "a version as one Yjs v1 update",
                "responses": {
                    "200": {"description": "OK", "content": _BINARY},
                    **_errors(*_AUTH, 404),
                },
            },
        },
        "/api/documents/{doc_id}/share": {
            "parameters": [_DOC_ID],
            "post": {
                "summary": "a link for someone else: a token for this document alone, at most "
                "the caller's access (which must be rw), never past its expiry; 409 when the "
                "server has no HS256 secret",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "mode": {"type": "string", "enum": ["rw", "ro"]},
                                    "ttl": {"type": "number", "minimum": 1},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "201": _json("Share", "created"),
                    **_errors(400, *_AUTH, 404, 409, 413, 415),
                },
            },
        },
        "/api/token/renew": {
            "post": {
                "summary": "the caller's token with the same claims and a fresh expiry, until "
                "COLLAB_TOKEN_MAX_LIFETIME after the first; 409 when the server has no secret",
                "responses": {"200": _json("Renewed"), **_errors(400, *_AUTH, 409, 415)},
            }
        },
        "/api/documents/{doc_id}/versions/{vid}/restore": {
            "parameters": [_DOC_ID, _VID],
            "post": {
                "summary": "make the live content the version's, as a new change",
                "responses": {"200": _json("Restored"), **_errors(*_AUTH, 404, 503)},
            },
        },
    },
}


async def openapi(_request: Request) -> Response:
    return JSONResponse(SPEC)
