"""collab: a real-time collaborative document server for Yjs clients."""

__version__ = "0.1.0"
