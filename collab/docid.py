"""Document ids: 1-128 characters from A-Z a-z 0-9 . _ ~ -, not starting with '.'."""

import re

RULE = "document ids are 1-128 characters from A-Z a-z 0-9 . _ ~ -, not starting with '.'"

DOC_ID = re.compile(r"[A-Za-z0-9_~\-][A-Za-z0-9._~\-]{0,127}")


def is_valid(doc_id: str) -> bool:
    return DOC_ID.fullmatch(doc_id) is not None
