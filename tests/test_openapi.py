"""The OpenAPI description is true: it names exactly the routes served, every real
answer of every route matches it, field for field, and a schemathesis run against a
live server finds no server error and no answer the description does not allow."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from pycrdt import Doc, XmlElement, XmlFragment, XmlText
from starlette.routing import Route

from collab.settings import Settings
from collab.web.app import create_app
from collab.web.openapi import SPEC

from .support import BIN, CollabServer, eventually
from .yclient import YClient

PAGES = {"/", "/d/{doc_id:path}"}  # the editor's HTML, not part of the API


def test_spec_names_exactly_the_routes_served() -> None:
    app = create_app(Settings())
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path not in PAGES
        for method in route.methods or ()
        if method != "HEAD"
    }
    described = {
        (path, method)
        for path, operations in SPEC["paths"].items()
        for method in operations
        if method != "parameters"
    }
    assert served == described


def test_schemathesis_finds_no_server_error(server: CollabServer, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(BIN / "st"),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--max-examples",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # it keeps a cache in its working directory
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
    assert "Traceback" not in server.log()


def _closed(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to others: an
    answer with a field the description does not name fails."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


class Checked:
    """An HTTP client whose every answer is checked against the closed description,
    remembering which operations it has seen."""

    def __init__(self, http: httpx.AsyncClient, spec: dict[str, Any]) -> None:
        self.http = http
        self.spec = spec
        self.schema = schemathesis.openapi.from_dict(spec)
        self.seen: set[tuple[str, str]] = set()

    async def __call__(
        self, method: str, template: str, status: int, *, path: str | None = None, **kw: Any
    ) -> httpx.Response:
        response = await self.http.request(method, path or template, **kw)
        assert response.status_code == status, (method, path or template, response.text)
        responses = self.spec["paths"][template][method.lower()]["responses"]
        assert str(status) in responses, f"{method} {template} answers {status}, undescribed"
        self.schema[template][method.upper()].validate_response(response)
        self.seen.add((template, method.lower()))
        return response


async def test_every_answer_matches_the_spec(server: CollabServer) -> None:
    spec = _closed(copy.deepcopy(SPEC))
    async with httpx.AsyncClient(base_url=server.url) as http:
        call = Checked(http, spec)
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            await call("GET", path, 200)
        await call("GET", "/api/session", 200)
        await call("GET", "/api/session", 400, path="/api/session?doc=.bad")
        one = "/api/documents/{doc_id}"
        await call("POST", "/api/documents", 201, json={"id": "spec"})
        await call("POST", "/api/documents", 201, json={})
        await call("POST", "/api/documents", 409, json={"id": "spec"})
        await call("POST", "/api/documents", 400, json={"id": ".bad"})
        await call("GET", one, 404, path="/api/documents/nothing-here")
        async with YClient(server.ws_url("spec")) as client:
            client.xml().children.append(XmlElement("heading", {}, [XmlText("Spec")]))
            await eventually(lambda: _titled(http, "spec"), what="the title")
            stats = await call("GET", "/api/stats", 200)
            assert stats.json()["peers_by_room"] == {"spec": 1}
            page = await call("GET", "/api/documents", 200, path="/api/documents?limit=1")
            assert page.json()["next_offset"] == 1
            await call("GET", "/api/documents", 200)
            await call("GET", "/api/documents", 400, path="/api/documents?limit=0")
            await call("GET", one, 200, path="/api/documents/spec")
            for format in ("text", "json", "html", "markdown"):
                await call(
                    "GET",
                    one + "/content",
                    200,
                    path=f"/api/documents/spec/content?format={format}",
                )
            await call("GET", one + "/content", 400, path="/api/documents/spec/content?format=x")
            body = {"format": "markdown", "content": "# Spec\n\nmore", "mode": "append"}
            await call("PUT", one + "/content", 200, path="/api/documents/spec/content", json=body)
            await call("GET", one + "/text", 200, path="/api/documents/spec/text")
            state = await call("GET", one + "/update", 200, path="/api/documents/spec/update")
            imported: Doc = Doc()
            imported.get("default", type=XmlFragment).children.append(XmlElement("paragraph"))
            update = imported.get_update()
            binary = {"Content-Type": "application/octet-stream"}
            path = "/api/documents/spec/update"
            await call("POST", one + "/update", 200, path=path, content=update, headers=binary)
            await call("POST", one + "/update", 400, path=path, content=b"\x05", headers=binary)
            assert state.content
            versions = one + "/versions"
            path = "/api/documents/spec/versions"
            saved = await call("POST", versions, 201, path=path, json={"label": "first"})
            await call("POST", versions, 400, path=path, json={"label": 5})
            await call("GET", versions, 200, path=path)
            vid = saved.json()["id"]
            version = versions + "/{vid}"
            await call("GET", version + "/update", 200, path=f"{path}/{vid}/update")
            await call("GET", version + "/update", 404, path=f"{path}/nope/update")
            await call("POST", version + "/restore", 200, path=f"{path}/{vid}/restore")
            # This server has no secret: it signs no tokens (test_share checks the 2xx).
            share = one + "/share"
            await call("POST", share, 409, path="/api/documents/spec/share", json={"mode": "ro"})
            await call("POST", "/api/token/renew", 409)
        await call("DELETE", one, 204, path="/api/documents/spec")
        await call("DELETE", one, 404, path="/api/documents/spec")
    described = {
        (path, method)
        for path, operations in spec["paths"].items()
        for method in operations
        if method != "parameters"
    }
    assert described == call.seen


async def _titled(http: httpx.AsyncClient, doc_id: str) -> bool:
    response = await http.get(f"/api/documents/{doc_id}")
    return response.status_code == 200 and bool(response.json()["title"])
