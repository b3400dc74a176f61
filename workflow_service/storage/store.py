"""The file store: bytes under ``FILES_DIR``, one :class:`StoredFile` row per file.

A writer streams into a temporary file in ``FILES_DIR`` (hashing as it goes), which is
renamed into place only when the writer finishes without an error, and only then is
the row committed: a reader never sees a half-written file, and a failed job leaves no
row and no bytes behind. A job that runs again (a retry) reuses its row (``job_id`` is
unique per kind) and atomically replaces its bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import peewee

from shared.db import utcnow
from workflow_service.models import new_id
from workflow_service.storage.models import FileKind, StoredFile

log = logging.getLogger(__name__)

#: Rows deleted per retention round trip.
PURGE_BATCH = 200
#: Age after which a writer's temporary file is left over from a killed process.
STALE_TEMP_S = 86_400


class FileWriter:
    """What ``with store.create(...) as out`` gives: ``out.write(bytes)``; after the
    block ``out.file`` is the committed :class:`StoredFile`."""

    def __init__(self, handle: IO[bytes]):
        self._handle = handle
        self._hash = hashlib.sha256()
        self.size = 0
        self.file: StoredFile | None = None

    def write(self, data: bytes) -> int:
        if isinstance(data, str):
            raise TypeError("FileWriter.write takes bytes")
        self._handle.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def writable(self) -> bool:  # lets io.TextIOWrapper and zipfile write through it
        return True

    def flush(self) -> None:
        self._handle.flush()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class FileStore:
    """Stores files under ``root``; rows through the models' database."""

    def __init__(
        self,
        root: Path | str,
        retention_days: int = 30,
        *,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.root = Path(root)
        self.retention = timedelta(days=retention_days)
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Any, *, clock: Callable[[], datetime] = utcnow) -> FileStore:
        return cls(settings.files_dir, settings.file_retention_days, clock=clock)

    def _ensure_root(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def full_path(self, stored: StoredFile) -> Path:
        return self.root / stored.path

    @contextlib.contextmanager
    def create(
        self,
        *,
        tenant: str,
        kind: str,
        name: str,
        content_type: str,
        created_by: str,
        job_id: str | None = None,
    ) -> Iterator[FileWriter]:
        if kind not in FileKind.ALL:
            raise ValueError(f"unknown file kind {kind!r}")
        root = self._ensure_root()
        fd, temp_name = tempfile.mkstemp(dir=root, prefix=".incoming-", suffix=".part")
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                writer = FileWriter(handle)
                yield writer
                handle.flush()
                os.fsync(handle.fileno())
            writer.file = self._commit(
                temp,
                writer,
                tenant_id=tenant,
                kind=kind,
                name=name[:255],
                content_type=content_type,
                created_by=created_by,
                job_id=job_id,
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _commit(self, temp: Path, writer: FileWriter, *, job_id, **fields) -> StoredFile:
        now = self.clock()
        values = {
            **fields,
            "size": writer.size,
            "sha256": writer.sha256,
            "job_id": job_id,
            "created_at": now,
            "expires_at": now + self.retention,
        }
        existing = None
        if job_id is not None:
            existing = StoredFile.get_or_none(
                (StoredFile.kind == fields["kind"]) & (StoredFile.job_id == job_id)
            )
        if existing is not None:
            return self._replace(existing, temp, values)
        file_id = new_id()
        relative = f"{file_id[:2]}/{file_id}"
        (self.root / file_id[:2]).mkdir(exist_ok=True)
        os.replace(temp, self.root / relative)
        try:
            with StoredFile._meta.database.atomic():
                return StoredFile.create(id=file_id, path=relative, **values)
        except BaseException as exc:
            existing = None
            if isinstance(exc, peewee.IntegrityError) and job_id is not None:
                # Another run of the same job committed first: take its row over.
                existing = StoredFile.get_or_none(
                    (StoredFile.kind == fields["kind"]) & (StoredFile.job_id == job_id)
                )
            if existing is not None:
                return self._replace(existing, self.root / relative, values)
            with contextlib.suppress(FileNotFoundError):
                (self.root / relative).unlink()
            raise

    def _replace(self, existing: StoredFile, source: Path, values: dict) -> StoredFile:
        target = self.root / existing.path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        values = {k: v for k, v in values.items() if k != "job_id"}
        StoredFile.update(**values).where(StoredFile.id == existing.id).execute()
        return StoredFile.get_by_id(existing.id)

    def open(self, stored: StoredFile) -> IO[bytes]:
        """The file's bytes for reading (raises FileNotFoundError if they are gone)."""
        return open(self.full_path(stored), "rb")  # noqa: SIM115 - the caller closes it

    def get(self, tenant: str, file_id: str) -> StoredFile | None:
        """The tenant's file ``file_id`` (None for another tenant's or a deleted one)."""
        return StoredFile.get_or_none((StoredFile.id == file_id) & (StoredFile.tenant_id == tenant))

    def delete(self, stored: StoredFile) -> None:
        """Row first, then bytes: a reader never gets a row whose bytes are gone for good."""
        StoredFile.delete().where(StoredFile.id == stored.id).execute()
        with contextlib.suppress(FileNotFoundError):
            self.full_path(stored).unlink()

    def _drop_stale_temporaries(self) -> None:
        """Temporary files of writers killed mid-write (a day old: no writer is that slow)."""
        if not self.root.is_dir():
            return
        cutoff = time.time() - STALE_TEMP_S
        for temp in self.root.glob(".incoming-*.part"):
            with contextlib.suppress(FileNotFoundError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete every file (row and bytes) past its ``expires_at``; how many."""
        now = now or self.clock()
        deleted = 0
        while True:
            batch = list(
                StoredFile.select()
                .where(StoredFile.expires_at <= now)
                .order_by(StoredFile.expires_at)
                .limit(PURGE_BATCH)
            )
            if not batch:
                self._drop_stale_temporaries()
                return deleted
            for stored in batch:
                self.delete(stored)
            deleted += len(batch)
