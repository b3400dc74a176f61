"""The stored-file table, kept importable here: it lives in
:mod:`workflow_service.storage.models`."""

from workflow_service.storage.models import READ_ROLES, FileKind, StoredFile, readable_kinds

__all__ = ["READ_ROLES", "FileKind", "StoredFile", "readable_kinds"]
