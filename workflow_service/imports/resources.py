"""``/imports``: start an import of policies from a CSV or XLSX file, and follow it.

``POST /imports`` takes the file as the raw body (``Content-Type: text/csv`` or the
XLSX type; ``?dry_run=true``, ``?file_name=``) or as JSON ``{"file_name",
"content_base64", "dry_run"}``. The whole file is checked before anything is kept
(see :mod:`.parsing`); then the import and its rows are stored in one transaction and
its first message is sent. An ``Idempotency-Key`` makes the request safe to repeat:
the same caller sending the same key again gets the first import's job back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import falcon
import peewee
from pydantic import BaseModel, Field

from shared.http import ApiDocs, ApiError, Param, bad_parameter, read_json, route
from workflow_service.db import database
from workflow_service.imports import parsing
from workflow_service.imports.messages import import_message
from workflow_service.imports.models import ImportJob, ImportRow, RowStatus
from workflow_service.settings import BatchSettings
from workflow_service.storage.jobs import accepted, job_ref, new_job_id, submit
from workflow_service.storage.models import FileKind
from workflow_service.storage.store import FileStore
from workflow_service.web.common import uuid_param

WRITE_ROLES = ("editor",)
READ_ROLES = ("editor", "auditor")
#: Failed rows shown in ``GET /imports/{id}`` (the report file has them all).
SHOWN_ERRORS = 50
INSERT_BATCH = 500
#: Room for the JSON around a base64 file.
JSON_OVERHEAD = 16 * 1024
TRUE = ("true", "1", "yes")
FALSE = ("false", "0", "no", "")


class JobLink(BaseModel):
    id: str
    href: str


class ImportLink(BaseModel):
    id: str
    href: str


class ImportAccepted(BaseModel):
    job: JobLink
    #: Follow the import (status, counts, report) at ``href``.
    import_: ImportLink = Field(alias="import")
    rows: int
    dry_run: bool


class ImportRequest(BaseModel):
    file_name: str
    content_base64: str
    dry_run: bool = False


class RowError(BaseModel):
    row: int
    column: str
    message: str


class ImportOut(BaseModel):
    id: str
    status: str
    dry_run: bool
    file_name: str
    file_format: str
    created_by: str
    rows: int
    rows_done: int
    created: int
    updated: int
    unchanged: int
    valid: int
    failed: int
    job: JobLink
    #: The report file (created, updated and failed rows with messages) once finished.
    report: dict | None
    error: str | None
    errors: list[RowError]
    created_at: str
    finished_at: str | None


def _bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise bad_parameter(name, f"'{name}' must be true or false.")


def _idempotency_key(req) -> str | None:
    raw = req.get_header("Idempotency-Key")
    if raw is None:
        return None
    key = raw.strip()
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise bad_parameter(
            "Idempotency-Key", "Idempotency-Key must be 1 to 200 printable characters."
        )
    return key


def _too_large(limit: int, size: int | None = None) -> falcon.HTTPError:
    said = f"The file is {size} bytes; " if size is not None else "The file exceeds the limit; "
    return falcon.HTTPContentTooLarge(
        title="File too large",
        description=f"{said}imports take files of up to {limit} bytes (IMPORT_MAX_BYTES). "
        "Split the file.",
    )


def iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def import_body(job: ImportJob) -> dict:
    failed = (
        ImportRow.select()
        .where((ImportRow.import_job == job.id) & (ImportRow.status == RowStatus.FAILED))
        .order_by(ImportRow.row_number)
        .limit(SHOWN_ERRORS)
    )
    errors = [
        {"row": r.row_number, "column": e.get("column", ""), "message": e.get("message", "")}
        for r in failed
        for e in (r.errors or [])
    ]
    return {
        "id": job.id,
        "status": job.status,
        "dry_run": job.dry_run,
        "file_name": job.file_name,
        "file_format": job.file_format,
        "created_by": job.created_by,
        "rows": job.total_rows,
        "rows_done": job.rows_done,
        "created": job.created,
        "updated": job.updated,
        "unchanged": job.unchanged,
        "valid": job.valid,
        "failed": job.failed,
        "job": job_ref(job.job_id),
        "report": job.report,
        "error": job.error,
        "errors": errors[:SHOWN_ERRORS],
        "created_at": iso(job.created_at),
        "finished_at": iso(job.finished_at),
    }


class ImportCollection:
    docs = {
        "POST": route(
            "Import policies from a CSV or XLSX file (raw body with its Content-Type, or "
            "JSON with content_base64); dry_run checks every row and writes nothing. "
            "Idempotency-Key: the same key again answers with the first import's job",
            request=ImportRequest,
            response=ImportAccepted,
            status=202,
            params=(
                Param("dry_run", description="true: check the rows only (raw uploads)"),
                Param("file_name", description="The file's name (raw uploads)"),
                Param("Idempotency-Key", "header", "Repeat-safe key of this caller's import"),
            ),
            errors=(400, 409, 413, 415, 422, 503),
            roles=WRITE_ROLES,
            # A raw CSV or XLSX file, or JSON under its own size limit: read by _read.
            parses_body=False,
        )
    }

    def __init__(self, settings: BatchSettings, store: FileStore, broker):
        self.settings = settings
        self.store = store
        self.broker = broker

    def _read(self, req) -> tuple[bytes, str, str, bool]:
        """(file bytes, format, file name, dry run) of the request."""
        limit = self.settings.import_max_bytes
        kind = (req.content_type or "").split(";")[0].strip().lower()
        if kind == "application/json" or kind.endswith("+json"):
            data = read_json(req, (limit * 4) // 3 + JSON_OVERHEAD)
            if not isinstance(data, dict):
                raise falcon.HTTPBadRequest(
                    title="Invalid body",
                    description='Send {"file_name", "content_base64", "dry_run"}.',
                )
            unknown = sorted(set(data) - {"file_name", "content_base64", "dry_run"})
            if unknown:
                raise ApiError(
                    falcon.HTTP_422,
                    "Invalid body",
                    f"Unknown field(s): {', '.join(unknown)}; send file_name, content_base64 "
                    "and dry_run.",
                )
            name, encoded = data.get("file_name"), data.get("content_base64")
            if not isinstance(name, str) or not 1 <= len(name.strip()) <= 255:
                raise ApiError(
                    falcon.HTTP_422,
                    "Invalid body",
                    "file_name must be a name of 1 to 255 characters.",
                )
            if not isinstance(encoded, str) or not encoded:
                raise ApiError(
                    falcon.HTTP_422, "Invalid body", "content_base64 must hold the file, base64."
                )
            if len(encoded) > (limit * 4) // 3 + 4:
                raise _too_large(limit)
            try:
                content = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise falcon.HTTPBadRequest(
                    title="Invalid base64",
                    description="content_base64 is not valid base64 (standard alphabet).",
                ) from None
            dry_run = _bool(data.get("dry_run", False), "dry_run")
            file_format = parsing.format_of(None, name.strip())
            return content, file_format, name.strip(), dry_run
        file_format = parsing.format_of(kind)  # 415 for anything else
        if req.content_length is not None and req.content_length > limit:
            raise _too_large(limit, req.content_length)
        content = req.bounded_stream.read(limit + 1)
        if len(content) > limit:
            raise _too_large(limit)
        name = (req.get_param("file_name") or f"upload.{file_format}").strip()[:255]
        dry_run = _bool(req.get_param("dry_run") or "false", "dry_run")
        return content, file_format, name, dry_run

    def on_post(self, req, resp):
        principal = req.context.principal
        key = _idempotency_key(req)
        content, file_format, name, dry_run = self._read(req)
        sha = hashlib.sha256(content).hexdigest()
        if key is not None:
            earlier = self._earlier(principal, key)
            if earlier is not None:
                return self._replay(resp, earlier, sha, dry_run)
        parsed = parsing.parse(content, file_format, self.settings.import_max_rows)
        import_id = new_job_id()
        job = ImportJob(
            id=import_id,
            tenant_id=principal.tenant,
            created_by=principal.sub,
            idempotency_key=key,
            content_sha256=sha,
            file_name=name,
            file_format=file_format,
            dry_run=dry_run,
            total_rows=len(parsed.rows),
            job_id=new_job_id(),
        )
        try:
            with database.atomic():
                job.save(force_insert=True)
                rows = [
                    {"import_job": import_id, "row_number": n, "data": values}
                    for n, values in parsed.rows
                ]
                for start in range(0, len(rows), INSERT_BATCH):
                    ImportRow.insert_many(rows[start : start + INSERT_BATCH]).execute()
        except peewee.IntegrityError:
            # The same key at the same moment: the other request made the import.
            earlier = self._earlier(principal, key) if key else None
            if earlier is None:
                raise
            return self._replay(resp, earlier, sha, dry_run)
        upload = None
        try:
            upload = self._keep_upload(job, content)
            ref = submit(self.broker, import_message(job, job.job_id))
        except Exception:
            # Nothing started: take back what was kept, so the key may be sent again.
            ImportRow.delete().where(ImportRow.import_job == import_id).execute()
            ImportJob.delete().where(ImportJob.id == import_id).execute()
            if upload is not None:
                self.store.delete(upload)
            raise
        self._answer(resp, job, ref)

    def _keep_upload(self, job: ImportJob, content: bytes):
        with self.store.create(
            tenant=job.tenant_id,
            kind=FileKind.IMPORT_UPLOAD,
            name=job.file_name,
            content_type=parsing.XLSX_TYPE if job.file_format == "xlsx" else "text/csv",
            created_by=job.created_by,
            job_id=job.id,
        ) as out:
            out.write(content)
        return out.file

    @staticmethod
    def _earlier(principal, key: str) -> ImportJob | None:
        return ImportJob.get_or_none(
            (ImportJob.tenant_id == principal.tenant)
            & (ImportJob.created_by == principal.sub)
            & (ImportJob.idempotency_key == key)
        )

    def _replay(self, resp, earlier: ImportJob, sha: str, dry_run: bool) -> None:
        if earlier.content_sha256 != sha or earlier.dry_run != dry_run:
            raise ApiError(
                falcon.HTTP_409,
                "Idempotency-Key already used",
                f"This Idempotency-Key started import {earlier.id} with another file or "
                "dry_run setting; use a new key for a new import.",
                import_id=earlier.id,
            )
        resp.set_header("Idempotent-Replayed", "true")
        self._answer(resp, earlier, job_ref(earlier.job_id))

    @staticmethod
    def _answer(resp, job: ImportJob, ref: dict) -> None:
        accepted(resp, ref)
        resp.media = {
            "job": ref,
            "import": {"id": job.id, "href": f"/imports/{job.id}"},
            "rows": job.total_rows,
            "dry_run": job.dry_run,
        }


class ImportItem:
    docs = {
        "GET": route(
            "An import: status, row counts, the first failed rows and its report file",
            response=ImportOut,
            params=(Param("import_id", "path", "Import id", {"type": "string", "format": "uuid"}),),
            errors=(400, 404),
            roles=READ_ROLES,
        )
    }

    def on_get(self, req, resp, import_id):
        principal = req.context.principal
        import_id = uuid_param(import_id, "import_id")
        job = ImportJob.get_or_none(
            (ImportJob.id == import_id) & (ImportJob.tenant_id == principal.tenant)
        )
        if job is None:
            raise falcon.HTTPNotFound(
                title="Import not found", description=f"No import {import_id} in your tenant."
            )
        resp.media = import_body(job)


def register(app: falcon.App, docs: ApiDocs, context) -> None:
    """Route registrar for the admin web: /imports, /imports/{id}."""
    settings = context.settings
    store = FileStore.from_settings(settings)
    docs.add_route(app, "/imports", ImportCollection(settings.batch, store, context.deps.broker))
    docs.add_route(app, "/imports/{import_id}", ImportItem())
