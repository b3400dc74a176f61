"""The file store, kept importable here: it lives in :mod:`workflow_service.storage.store`."""

from workflow_service.storage.store import FileStore

__all__ = ["FileStore"]
