"""Running an import: its pending rows, in order, through the api; one call per row.

A run works for at most ``IMPORT_CHUNK_SECONDS`` and then sends a continuation message
for the same import (governance.import allows 2 minutes per message), so a file of
10,000 rows is a chain of messages, each resuming from the checkpoint. Every 100 rows
it marks the rows done in one transaction (the checkpoint) and reports progress. Each
row is one api call with an ``Idempotency-Key`` derived from the import, the row
number and the row's content: a row sent again (a retried, resumed or duplicated
message) gets the api's first answer back and creates nothing new. A dry run makes no
writes at all: it checks each row as the api would and, for a row naming a policy,
that the policy exists.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from shared.db import utcnow
from shared.jobstatus import report_progress, report_subject
from workflow_service.apiclient import ApiUnavailable
from workflow_service.db import database
from workflow_service.imports.models import ImportJob, ImportRow, ImportStatus, RowStatus
from workflow_service.imports.validation import api_body, check_row, differs
from workflow_service.storage.cells import neutralise_row
from workflow_service.storage.models import FileKind
from workflow_service.storage.tabular import Utf8Out

log = logging.getLogger(__name__)

#: Rows per checkpoint (and per progress report).
BATCH_ROWS = 100
#: A PATCH refused as stale (someone changed the policy in between) is tried again
#: after a fresh read this many times.
STALE_RETRIES = 3
REPORT_COLUMNS = ("row", "status", "policy_id", "column", "message")


class ImportForbidden(Exception):
    """The api refused the service itself (401/403): no row can succeed; not retried."""


@dataclass
class Outcome:
    status: str
    policy_id: str | None = None
    errors: list[dict[str, str]] | None = None


def idempotency_key(import_id: str, row: ImportRow, extra: str = "") -> str:
    digest = hashlib.sha256(
        json.dumps(row.data, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:16]
    return f"import-{import_id}-row-{row.row_number}-{digest}{extra}"


def _api_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        parts = [str(body.get("title") or ""), str(body.get("description") or "")]
        errors = body.get("errors")
        if isinstance(errors, list):
            parts += [
                f"{e.get('field', '')}: {e.get('message', '')}"
                for e in errors
                if isinstance(e, dict)
            ]
        text = ". ".join(p.strip(". ") for p in parts if p)
        if text:
            return f"the api answered {response.status_code}: {text}"[:1000]
    return f"the api answered {response.status_code}"


class RowWriter:
    """Sends one row to the api (or, in a dry run, checks it) and says how it went."""

    def __init__(self, api: Any, job: ImportJob):
        self.api = api
        self.job = job
        self.headers = {"X-Initiator": job.created_by}

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.api.request(method, path, self.job.tenant_id, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"{method} {path}: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise ImportForbidden(f"{method} {path}: {_api_error(response)}")
        if response.status_code == 429 or response.status_code >= 500:
            raise ApiUnavailable(f"{method} {path}: the api answered {response.status_code}")
        return response

    def write(self, row: ImportRow) -> Outcome:
        checked, errors = check_row(row.data)
        if checked is None:
            return Outcome(RowStatus.FAILED, errors=errors)
        body = api_body(checked)
        if checked.id is None:
            if self.job.dry_run:
                return Outcome(RowStatus.VALID)
            # The api would make its caller (the service) the owner: the person who
            # imports is, unless the row names one.
            return self._create(row, {"owner": self.job.created_by, **body})
        return self._update(row, str(checked.id), body, checked.version)

    def _create(self, row: ImportRow, body: dict) -> Outcome:
        headers = {**self.headers, "Idempotency-Key": idempotency_key(self.job.id, row)}
        response = self._call("POST", "/policies", json=body, headers=headers)
        if response.status_code in (200, 201):
            return Outcome(RowStatus.CREATED, policy_id=str(response.json().get("id")))
        return Outcome(RowStatus.FAILED, errors=[{"column": "", "message": _api_error(response)}])

    def _update(
        self, row: ImportRow, policy_id: str, body: dict, exported_at: int | None
    ) -> Outcome:
        path = f"/policies/{quote(policy_id, safe='')}"
        for _ in range(STALE_RETRIES):
            response = self._call("GET", path)
            if response.status_code in (400, 404):
                return Outcome(
                    RowStatus.FAILED,
                    policy_id=policy_id,
                    errors=[{"column": "id", "message": "no policy of this tenant has this id"}],
                )
            if response.status_code != 200:
                return Outcome(
                    RowStatus.FAILED, policy_id, [{"column": "", "message": _api_error(response)}]
                )
            current = response.json()
            if not differs(body, current):
                return Outcome(RowStatus.UNCHANGED, policy_id=policy_id)
            if exported_at is not None and exported_at != current.get("version"):
                message = (
                    f"the policy changed since this row was exported (version {exported_at}, "
                    f"now {current.get('version')}); export it again and redo the change"
                )
                return Outcome(
                    RowStatus.FAILED, policy_id, [{"column": "version", "message": message}]
                )
            if self.job.dry_run:
                return Outcome(RowStatus.VALID, policy_id=policy_id)
            version = int(current.get("version") or 0)
            headers = {
                **self.headers,
                "If-Match": f'"{version}"',
                # The version is part of the key: the same change based on a newer
                # version (someone else changed it since) is a new request.
                "Idempotency-Key": idempotency_key(self.job.id, row, f"-v{version}"),
            }
            response = self._call("PATCH", path, json=body, headers=headers)
            if response.status_code == 200:
                return Outcome(RowStatus.UPDATED, policy_id=policy_id)
            if response.status_code != 412:
                return Outcome(
                    RowStatus.FAILED, policy_id, [{"column": "", "message": _api_error(response)}]
                )
        return Outcome(
            RowStatus.FAILED,
            policy_id,
            [{"column": "", "message": "the policy kept changing while it was imported"}],
        )


def _checkpoint(job: ImportJob, done: list[tuple[ImportRow, Outcome]]) -> None:
    """Mark ``done`` rows (those still pending) and add them to the import's counts, in
    one transaction."""
    if not done:
        return
    counts: dict[str, int] = {}
    with database.atomic():
        for row, outcome in done:
            changed = (
                ImportRow.update(
                    status=outcome.status, policy_id=outcome.policy_id, errors=outcome.errors
                )
                .where((ImportRow.id == row.id) & (ImportRow.status == RowStatus.PENDING))
                .execute()
            )
            if changed:
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if counts:
            increments: dict[Any, Any] = {
                getattr(ImportJob, status): getattr(ImportJob, status) + n
                for status, n in counts.items()
            }
            increments[ImportJob.rows_done] = ImportJob.rows_done + sum(counts.values())
            increments[ImportJob.updated_at] = utcnow()
            ImportJob.update(increments).where(ImportJob.id == job.id).execute()
    done.clear()


def _pending(job: ImportJob, after: int) -> list[ImportRow]:
    return list(
        ImportRow.select()
        .where(
            (ImportRow.import_job == job.id)
            & (ImportRow.status == RowStatus.PENDING)
            & (ImportRow.row_number > after)
        )
        .order_by(ImportRow.row_number)
        .limit(BATCH_ROWS)
    )


def run(
    import_id: str,
    *,
    api: Any,
    store: Any,
    job_id: str,
    chunk_s: float,
    continue_with: Callable[[ImportJob], str],
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Work on import ``import_id`` for up to ``chunk_s``; its summary. When rows are
    left, ``continue_with(job)`` sends the next message and the summary names its job."""
    job = ImportJob.get_or_none(ImportJob.id == import_id)
    if job is None:
        raise UnknownImport(f"no import {import_id}")
    if job.status in ImportStatus.FINAL:
        return summary(job)
    report_subject(import_id=job.id, file_name=job.file_name, entity_type=job.entity_type)
    ImportJob.update(
        status=ImportStatus.RUNNING,
        current_job_id=job_id,
        chunks=ImportJob.chunks + 1,
        updated_at=utcnow(),
    ).where(ImportJob.id == job.id).execute()
    writer = RowWriter(api, job)
    deadline = clock() + chunk_s
    done: list[tuple[ImportRow, Outcome]] = []
    after = 0
    try:
        while True:
            rows = _pending(job, after)
            if not rows:
                break
            for row in rows:
                done.append((row, writer.write(row)))
                after = row.row_number
                if clock() >= deadline:
                    break  # the time is checked per row: a slow api cannot stretch a batch
            _checkpoint(job, done)
            job = ImportJob.get_by_id(job.id)
            percent = min(99, job.rows_done * 100 // max(job.total_rows, 1))
            report_progress(percent, f"{job.rows_done} of {job.total_rows} rows")
            if clock() >= deadline and _pending(job, after):
                next_job = continue_with(job)
                log.info("import %s continues in job %s", job.id, next_job)
                return {**summary(job), "continued_in": next_job}
    except ImportForbidden as exc:
        _checkpoint(job, done)
        fail(job.id, str(exc))  # not retried: no row can succeed
        raise
    except Exception as exc:
        _checkpoint(job, done)  # rows done before an error are not sent again
        ImportJob.update(error=f"{type(exc).__name__}: {exc}"[:4000]).where(
            ImportJob.id == job.id
        ).execute()
        raise
    except BaseException:
        # Dramatiq's time limit (an asynchronous TimeLimitExceeded) or a shutdown: keep
        # what was done, then let it through.
        _checkpoint(job, done)
        raise
    _checkpoint(job, done)
    return finish(job, store)


class UnknownImport(Exception):
    pass


def finish(job: ImportJob, store: Any) -> dict[str, Any]:
    """Write the report file and mark the import succeeded (idempotent: the same job
    replaces its report)."""
    job = ImportJob.get_by_id(job.id)
    with store.create(
        tenant=job.tenant_id,
        kind=FileKind.IMPORT_REPORT,
        name=f"import-{job.id}-report.csv",
        content_type="text/csv; charset=utf-8",
        created_by=job.created_by,
        job_id=job.id,  # one report per import, whichever message writes it
    ) as out:
        write_report(job, out)
    assert out.file is not None
    counts = _counts(job)
    descriptor = out.file.descriptor(rows=job.total_rows, **counts)
    ImportJob.update(
        status=ImportStatus.SUCCEEDED,
        report=descriptor,
        finished_at=utcnow(),
        updated_at=utcnow(),
    ).where((ImportJob.id == job.id) & (ImportJob.status.not_in(ImportStatus.FINAL))).execute()
    report_progress(100, f"{job.rows_done} of {job.total_rows} rows")
    return summary(ImportJob.get_by_id(job.id))


def write_report(job: ImportJob, out: Any) -> None:
    writer = csv.writer(Utf8Out(out))
    writer.writerow(REPORT_COLUMNS)
    last = 0
    while True:
        rows = list(
            ImportRow.select()
            .where((ImportRow.import_job == job.id) & (ImportRow.row_number > last))
            .order_by(ImportRow.row_number)
            .limit(500)
        )
        if not rows:
            break
        for row in rows:
            for error in row.errors or [{"column": "", "message": ""}]:
                writer.writerow(
                    neutralise_row(
                        [
                            row.row_number,
                            row.status,
                            row.policy_id or "",
                            error["column"],
                            error["message"],
                        ]
                    )
                )
        last = rows[-1].row_number


def _counts(job: ImportJob) -> dict[str, int]:
    return {
        "created": job.created,
        "updated": job.updated,
        "unchanged": job.unchanged,
        "valid": job.valid,
        "failed": job.failed,
    }


def summary(job: ImportJob) -> dict[str, Any]:
    return {
        "import_id": job.id,
        "status": job.status,
        "dry_run": job.dry_run,
        "rows": job.total_rows,
        "rows_done": job.rows_done,
        **_counts(job),
        "file": job.report,
    }


def fail(import_id: str, error: str | None = None) -> None:
    """Mark the import failed with ``error`` (default: the last error it recorded)."""
    values: dict[str, Any] = {
        "status": ImportStatus.FAILED,
        "finished_at": utcnow(),
        "updated_at": utcnow(),
    }
    if error:
        values["error"] = error[:4000]
    ImportJob.update(**values).where(
        (ImportJob.id == import_id) & (ImportJob.status.not_in(ImportStatus.FINAL))
    ).execute()
