"""The OpenAPI description is true: it names exactly the routes served, and a
schemathesis run against a live server finds no server error."""

from __future__ import annotations

import subprocess
from pathlib import Path

from starlette.routing import Route

from collab.settings import Settings
from collab.web.app import create_app
from collab.web.openapi import SPEC

from .support import BIN, CollabServer

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
            "not_a_server_error",
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
