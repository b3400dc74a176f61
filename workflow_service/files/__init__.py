"""Stored files: reports, exports, import reports, audit packages and uploads.

Batch jobs write their output through :class:`~workflow_service.files.store.FileStore`
(bytes under ``FILES_DIR``, one :class:`~workflow_service.files.models.StoredFile` row
each), answer their caller with :func:`~workflow_service.files.jobs.accepted` and return
the file's :meth:`~workflow_service.files.models.StoredFile.descriptor` as their job
result. ``GET /files/{id}`` serves a file to its tenant's readers of its kind, and a
scheduled job deletes files past their ``expires_at``.

A feature, declared in :mod:`.feature`, that the batch features (audit, reports,
exports, imports) build on. May import: the kernel (``engine``, ``models``, ``steps``,
``web`` helpers, ``kernel.hooks``...) and ``shared``; no other feature.
"""

from workflow_service.files.models import FileKind, StoredFile
from workflow_service.files.store import FileStore

__all__ = ["FileKind", "FileStore", "StoredFile"]
