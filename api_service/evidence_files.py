"""Evidence files: the bytes behind a piece of evidence, stored on disk under
``EVIDENCE_DIR`` by tenant and evidence id, their SHA-256 recorded with the evidence.

An upload is written to a temporary file in the evidence's folder and renamed into
place under a name of its own, so a reader never sees half a file and a download that
started before a replacement finishes reading the file it opened. The row is changed
(version, snapshot, ``evidence.updated``) after the file is in place; if that fails the
new file is removed, and once it committed the file it replaced is.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import falcon

from api_service.entities import EntityService, job_links
from api_service.errors import ContentFrozen, VersionRequired
from shared.auth import Principal

#: Types an evidence file may have (anything else is a 415).
ALLOWED_TYPES = frozenset(
    {
        "application/pdf",
        "image/png",
        "image/jpeg",
        "text/plain",
        "text/csv",
        "application/json",
        "application/zip",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)
#: How a file of each binary type begins (its magic number): bytes sent as one of these
#: types that do not begin so are refused (415), so an HTML or SVG page is never stored
#: and served as an image. Text types have no signature to check (their download is
#: text, an attachment, with nosniff).
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    # An empty archive is only its end record.
    "application/zip": (b"PK\x03\x04", b"PK\x05\x06"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (b"PK\x03\x04",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK\x03\x04",),
}
_HEAD_BYTES = 16
#: Statuses whose file does not change (the decision is about it, or was made on it).
FROZEN_FILE_STATUSES = frozenset({"submitted", "accepted", "expired"})
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
_CHUNK = 64 * 1024
_SAFE_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the store's root
    size: int
    sha256: str


def _tenant_folder(tenant: str) -> str:
    # A tenant id is any string of a token; one that is not a plain name gets a hashed
    # folder, so no tenant id can point outside the store (``..``, ``/``).
    if _SAFE_TENANT.match(tenant):
        return tenant
    return "t-" + hashlib.sha256(tenant.encode()).hexdigest()[:32]


def safe_file_name(name: str | None, fallback: str) -> str:
    cleaned = _UNSAFE_NAME.sub("_", (name or "").strip())[:200].strip(" .")
    return cleaned or fallback


def _check_signature(content_type: str | None, head: bytes) -> None:
    signatures = SIGNATURES.get(content_type or "", ())
    if signatures and not head.startswith(signatures):
        raise falcon.HTTPUnsupportedMediaType(
            title="File content does not match its type",
            description=f"The file was sent as {content_type}, but its bytes do not begin "
            f"as a {content_type} file does; send it with the type of what it is.",
        )


class FileStore:
    """Files under ``root`` (created if missing)."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def save(
        self,
        tenant: str,
        evidence_id: uuid.UUID,
        stream: IO[bytes],
        max_bytes: int,
        content_type: str | None = None,
    ) -> StoredFile:
        """Write ``stream`` (at most ``max_bytes``; 413 beyond) and return where it is;
        bytes that do not begin as a ``content_type`` file does are a 415."""
        folder = Path(_tenant_folder(tenant)) / str(evidence_id)
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        name = folder / uuid.uuid4().hex
        temp = self.root / folder / f".upload-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            with open(temp, "wb") as out:
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_bytes:
                        raise falcon.HTTPContentTooLarge(
                            title="File too large",
                            description=f"The file exceeds the limit of {max_bytes} bytes "
                            "(EVIDENCE_MAX_BYTES).",
                        )
                    if len(head) < _HEAD_BYTES:
                        head = (head + chunk)[:_HEAD_BYTES]
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size == 0:
                raise falcon.HTTPBadRequest(
                    title="Empty file", description="Send the file's bytes as the request body."
                )
            _check_signature(content_type, head)
            os.replace(temp, self.root / name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return StoredFile(str(name), size, digest.hexdigest())

    def path(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if self.root not in path.parents:
            raise ValueError(f"{relative!r} is outside the evidence store")
        return path

    def remove(self, relative: str | None) -> None:
        if relative:
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.path(relative).unlink()


class EvidenceFiles:
    """Upload and download of evidence files, scoped to the caller's tenant."""

    def __init__(self, evidence: EntityService, store: FileStore, max_bytes: int):
        self.evidence = evidence
        self.store = store
        self.max_bytes = max_bytes

    def attach(
        self,
        principal: Principal,
        evidence_id: uuid.UUID,
        *,
        if_match: int | None,
        content_type: str,
        file_name: str | None,
        stream: IO[bytes],
    ) -> dict[str, Any]:
        if if_match is None:
            # The body is the file: the version goes in If-Match, nowhere else.
            current = self.evidence.get(principal, evidence_id).version
            raise VersionRequired(
                "Send the version of the evidence this file is for as an If-Match header "
                f'(its ETag: If-Match: "{current}" now), so a concurrent change is never '
                "overwritten."
            )
        expected = if_match
        # Refuse early what the write would refuse, before reading the body.
        self._check(self.evidence.get(principal, evidence_id), expected)
        stored = self.store.save(
            principal.tenant, evidence_id, stream, self.max_bytes, content_type
        )
        try:
            with self.evidence.db.atomic():
                row = self.evidence.get(principal, evidence_id)
                self._check(row, expected)
                replaced = row.file_path
                name = safe_file_name(file_name, f"evidence-{evidence_id}")
                row, pending = self.evidence.change(
                    principal,
                    row,
                    {
                        "file_name": name,
                        "content_type": content_type,
                        "size": stored.size,
                        "sha256": stored.sha256,
                        "file_path": stored.path,
                    },
                    expected,
                    {"changed_fields": ["file"], "file_name": name, "size": stored.size},
                )
        except BaseException:
            self.store.remove(stored.path)
            raise
        self.store.remove(replaced)
        self.evidence.outbox.publish([pending])
        return {**self.evidence.kind.body(row), "jobs": job_links([pending])}

    def _check(self, row: Any, expected: int | None) -> None:
        self.evidence._check_version(row, expected)
        if row.status in FROZEN_FILE_STATUSES:
            why = self.evidence.kind.frozen[row.status]
            raise ContentFrozen(
                why.format(id=row.id, version=row.version, status=row.status),
                title=self.evidence.kind.frozen_title,
                status=row.status,
                version=row.version,
            )

    def open(self, principal: Principal, evidence_id: uuid.UUID) -> tuple[Any, IO[bytes]]:
        row = self.evidence.get(principal, evidence_id)
        if not row.file_path:
            raise falcon.HTTPNotFound(
                title="No file",
                description=f"Evidence {evidence_id} has no file; upload one with PUT "
                f"/evidence/{evidence_id}/file.",
            )
        try:
            return row, open(self.store.path(row.file_path), "rb")  # noqa: SIM115 - streamed
        except (FileNotFoundError, ValueError):
            raise falcon.HTTPNotFound(
                title="File missing",
                description=f"The file of evidence {evidence_id} is not in the store; "
                "upload it again.",
            ) from None
