"""collab: a real-time collaborative document server for Yjs clients.

Embedding: ``from collab import Hooks, create_app`` (see the README)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .auth import Grant, Mode
    from .documents import Documents
    from .hooks import (
        DocumentChanged,
        DocumentDeleted,
        DocumentLoaded,
        DocumentStored,
        Hooks,
        PeerConnected,
        PeerDisconnected,
    )
    from .settings import Settings
    from .web.app import create_app

# What ``collab.X`` names, and the module it comes from: imported when first used, so
# that the command line starts without the web stack.
_EXPORTS = {
    "create_app": "web.app",
    "Settings": "settings",
    "Documents": "documents",
    "Grant": "auth",
    "Mode": "auth",
    "Hooks": "hooks",
    "DocumentLoaded": "hooks",
    "DocumentChanged": "hooks",
    "DocumentStored": "hooks",
    "DocumentDeleted": "hooks",
    "PeerConnected": "hooks",
    "PeerDisconnected": "hooks",
}

__all__ = [
    "DocumentChanged",
    "DocumentDeleted",
    "DocumentLoaded",
    "DocumentStored",
    "Documents",
    "Grant",
    "Hooks",
    "Mode",
    "PeerConnected",
    "PeerDisconnected",
    "Settings",
    "__version__",
    "create_app",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'collab' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
