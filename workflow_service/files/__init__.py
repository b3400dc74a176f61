"""Stored files' feature: ``GET /files`` and ``GET /files/{id}``, the table's migrations
and the scheduled job that deletes files past their ``expires_at``.

The store itself is infrastructure every batch feature (audit, reports, exports,
imports) writes through, so it lives in the kernel-level :mod:`workflow_service.storage`
(:class:`~workflow_service.storage.store.FileStore`, the
:class:`~workflow_service.storage.models.StoredFile` table, the batch jobs' HTTP answer
and the spreadsheet writers); this package serves and expires what it holds.

A feature, declared in :mod:`.feature`. May import: the kernel (``storage``, ``models``,
``web`` helpers, ``kernel.hooks``...) and ``shared``; no other feature.
"""

from workflow_service.storage.models import FileKind, StoredFile
from workflow_service.storage.store import FileStore

__all__ = ["FileKind", "FileStore", "StoredFile"]
