"""The editor and the server share one copy of the close codes and the id rule: the
editor's is generated from the server's, and it is current; the editor handles no
close code the server never sends; the JS rule accepts exactly the ids Python does."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from collab import docid
from collab.closecodes import CloseCode

from .support import ROOT

GENERATOR = ROOT / "frontend" / "scripts" / "contract.py"
SOURCES = ROOT / "frontend" / "src"

# The browser's own code for a socket closed without a close frame: not the server's;
# and the bounds of the 44xx range the editor takes as permanent refusals.
ALLOWED = {1006, 4400, 4500}


def test_the_generated_contract_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_editor_names_only_codes_the_server_sends() -> None:
    for path in SOURCES.glob("*.ts"):
        source = path.read_text()
        numbers = {int(n) for n in re.findall(r"\b(1\d{3}|4\d{3})\b", source)}
        codes = {n for n in numbers if n in range(1000, 1016) or n in range(4000, 5000)}
        assert codes <= {int(c) for c in CloseCode} | ALLOWED, path.name


IDS = ["a", "A.b_c~d-e", "x" * 128, "x" * 129, "", ".hidden", "a/b", "ünï", "a b", "-", "~.", "a\n"]


@pytest.mark.parametrize("doc_id", IDS)
def test_the_editor_rule_is_the_servers(doc_id: str) -> None:
    contract = (SOURCES / "generated" / "contract.ts").read_text()
    pattern = re.search(r"export const DOC_ID = new RegExp\((.*)\)\n", contract)
    assert pattern is not None
    script = f"console.log(new RegExp({pattern.group(1)}).test({json.dumps(doc_id)}))"
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(docid.is_valid(doc_id)).lower()
