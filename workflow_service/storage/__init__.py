"""Stored files, kernel-level: the infrastructure every batch feature (audit, reports,
exports, imports) writes its result through.

:class:`~.store.FileStore` keeps the bytes under ``FILES_DIR``, one
:class:`~.models.StoredFile` row each; :mod:`.jobs` builds a batch job's message and its
``202`` answer; :mod:`.tabular` writes rows as CSV, XLSX or JSON, every text cell
neutralised by :mod:`.cells`. The ``files`` feature serves the stored files over HTTP,
migrates their table and expires them.

Part of the kernel (see pyproject.toml's import contracts): it imports no feature.
"""

from workflow_service.storage.models import FileKind, StoredFile
from workflow_service.storage.store import FileStore

__all__ = ["FileKind", "FileStore", "StoredFile"]
