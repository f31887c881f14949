"""A host application that embeds collab as the README shows: FastAPI, collab mounted
under /collab, its lifespan the host's, the host's own sign-in and hooks. Served by
uvicorn in the embedding tests (``uvicorn tests.hostapp:app``).

Sign-in: the ``session`` cookie, or the ``token`` query parameter the stock
y-websocket client sends, ``<user>:<rw|ro>``. The hooks write
each event they are told of as a JSON line to ``HOST_EVENTS``; for documents whose id
starts with ``raise-`` or ``hang-``, ``on_change`` and ``on_store`` raise or hang.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pycrdt import XmlElement, XmlFragment, XmlText
from starlette.requests import HTTPConnection

from collab import Grant, Hooks, create_app
from collab.auth import issue

EVENTS = os.environ.get("HOST_EVENTS", "")
USERS = {"carol": "Carol Danvers", "dave": "Dave Lister", "boom": "", "slow": ""}


def record(kind: str, event: object) -> None:
    fields = dataclasses.asdict(event) if dataclasses.is_dataclass(event) else vars(event)  # type: ignore[arg-type]
    write({"hook": kind, "at": time.time(), **fields})


def write(line: dict[str, Any]) -> None:
    if EVENTS:
        with open(EVENTS, "a") as out:
            out.write(json.dumps(line, default=sorted) + "\n")


async def authenticate(conn: HTTPConnection, doc_id: str | None) -> Grant | None:
    session = conn.cookies.get("session") or conn.query_params.get("token") or ""
    user, _, mode = session.partition(":")
    if user == "boom":
        raise RuntimeError("the host's user database is down")
    if user == "slow":
        await asyncio.sleep(3600)
    if user not in USERS or mode not in ("rw", "ro"):
        return None
    return Grant(user, name=USERS[user], mode=mode)


async def misbehave(doc_id: str) -> None:
    if doc_id.startswith("raise-"):
        raise RuntimeError(f"the host's indexer failed on {doc_id}")
    if doc_id.startswith("hang-"):
        await asyncio.sleep(3600)


def recorder(kind: str) -> Any:
    async def hook(event: Any) -> None:
        record(kind, event)
        if kind in ("on_change", "on_store"):
            await misbehave(event.doc_id)

    return hook


hooks = Hooks(
    authenticate=authenticate,
    on_load=recorder("on_load"),
    on_change=recorder("on_change"),
    on_store=recorder("on_store"),
    on_delete=recorder("on_delete"),
    on_connect=recorder("on_connect"),
    on_disconnect=recorder("on_disconnect"),
    change_debounce=float(os.environ.get("HOST_CHANGE_DEBOUNCE", "0.3")),
    change_max_wait=float(os.environ.get("HOST_CHANGE_MAX_WAIT", "2")),
)

collab = create_app(hooks=hooks)
app = FastAPI(lifespan=collab.lifespan)
app.mount("/collab", collab)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/host/notes/{doc_id}")
async def add_note(doc_id: str, request: Request) -> dict[str, int]:
    """A server-side edit: the host appends a paragraph to a document."""
    text = (await request.body()).decode()
    async with collab.documents.edit(doc_id, origin="host-notes") as doc:
        fragment = doc.get("default", type=XmlFragment)
        fragment.children.append(XmlElement("paragraph", contents=[XmlText(text)]))
        blocks = len(fragment.children)
    return {"blocks": blocks}


@app.post("/host/token")
async def fresh_token(request: Request) -> dict[str, str]:
    """The host's token refresh (COLLAB_TOKEN_REFRESH_URL=/host/token): a new token
    for whoever the host's own sign-in says is there."""
    grant = await authenticate(request, None)
    if grant is None:
        raise HTTPException(401, "not signed in")
    write({"hook": "refresh", "at": time.time(), "user": grant.sub})
    ttl = float(os.environ.get("HOST_TOKEN_TTL", "3600"))
    secret = os.environ["COLLAB_AUTH_SECRET"]
    token = issue(secret, grant.sub, ["*"], read_only=not grant.can_write, ttl=ttl, name=grant.name)
    return {"token": token}


# The same app, mounted by a host that forgot to run collab's lifespan.
forgetful = FastAPI()
forgetful.mount("/collab", create_app())


@forgetful.get("/healthz")
async def forgetful_healthz() -> dict[str, str]:
    return {"status": "ok"}
