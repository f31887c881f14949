"""Writes src/generated/contract.ts, the editor's copy of the server's close codes
(collab/closecodes.py) and document-id rule (collab/docid.py), so that the two never
differ. `npm run build` runs it; `--check` only says whether the file is current.

It needs only Python's standard library: the two modules are read by path, without
importing the collab package or its dependencies.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

FRONTEND = Path(__file__).resolve().parent.parent
SERVER = FRONTEND.parent / "collab"
TARGET = FRONTEND / "src" / "generated" / "contract.ts"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_contract_{name}", SERVER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render() -> str:
    closecodes, docid = _module("closecodes"), _module("docid")
    codes = "\n".join(f"  {code.name}: {int(code)}," for code in closecodes.CloseCode)
    return (
        "// Generated from collab/closecodes.py and collab/docid.py by\n"
        "// frontend/scripts/contract.py (run by `npm run build`): do not edit.\n"
        "\n"
        "/** The WebSocket close codes the server sends, by name. */\n"
        f"export const CloseCode = {{\n{codes}\n}} as const\n"
        "\n"
        "/** A valid document id, whole. */\n"
        f"export const DOC_ID = new RegExp({json.dumps(f'^(?:{docid.DOC_ID.pattern})$')})\n"
        "\n"
        f"export const DOC_ID_RULE = {json.dumps(docid.RULE)}\n"
    )


def main() -> int:
    wanted = render()
    current = TARGET.read_text() if TARGET.exists() else None
    if "--check" in sys.argv[1:]:
        if current != wanted:
            print(f"{TARGET} is out of date: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
