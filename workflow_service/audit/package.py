"""Audit packages: one zip of what an auditor needs about a period.

Contents (JSON Lines, one object a line, so a large period streams through in
bounded memory): the period's policies with their versions (read from the api with a
service token), its approvals with their decisions and refusals, its executions with
their step logs, the audit log slice, and ``manifest.json`` listing every file's
SHA-256 and size, the period, the chain's head and the result of verifying the chain.

Built into a temporary file, then written through the file store keyed on the job id,
so a retried job replaces its file instead of adding one.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload
from urllib.parse import quote

import httpx
import peewee

from shared.db import utcnow
from shared.jobstatus import report_progress
from workflow_service.apiclient import ApiUnavailable
from workflow_service.audit import chain
from workflow_service.audit.models import AuditEntry
from workflow_service.audit.record import record
from workflow_service.models import Execution, StepRun
from workflow_service.web.serialize import execution_body

#: Fixed member timestamps: the same data gives the same bytes on a retry.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: Api collections besides policies a package asks for; an api without them (404) is
#: noted in the manifest instead of failing the package.
OTHER_COLLECTIONS = ("assessments", "evidence")
BATCH = 500
#: Api pages a package reads at most per collection (200 items each).
MAX_API_PAGES = 1000


class PackageError(Exception):
    """The package cannot be built now (the api is unreachable): retried."""


@dataclass(frozen=True)
class Period:
    start: datetime
    until: datetime

    def label(self) -> str:
        return f"{self.start:%Y%m%d}-{self.until:%Y%m%d}"

    def to_dict(self) -> dict[str, str]:
        return {"from": iso(self.start), "until": iso(self.until)}


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


class _Api:
    def __init__(self, api: Any, tenant_id: str):
        self.api = api
        self.tenant_id = tenant_id

    def get(self, path: str) -> httpx.Response:
        try:
            response = self.api.request("GET", path, self.tenant_id)
        except httpx.HTTPError as exc:
            raise PackageError(f"GET {path}: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            raise PackageError(f"GET {path}: the api answered {response.status_code}")
        return response

    def pages(self, path: str) -> Iterator[dict[str, Any]] | None:
        """Every item of a paged collection; None when the api has no such collection."""
        first = self.get(f"{path}?limit=200")
        if first.status_code == 404:
            return None
        return self._rest(path, first)

    def _rest(self, path: str, response: httpx.Response) -> Iterator[dict[str, Any]]:
        for _ in range(MAX_API_PAGES):
            if response.status_code != 200:
                raise PackageError(f"GET {path}: the api answered {response.status_code}")
            body = response.json()
            yield from body.get("items") or []
            cursor = body.get("next_cursor")
            if not cursor:
                return
            response = self.get(f"{path}?limit=200&cursor={quote(cursor, safe='')}")


def _in(period: Period, value: Any) -> bool:
    moment = value if isinstance(value, datetime) else _utc(value)
    return moment is not None and period.start <= moment < period.until


def policies(api: _Api, period: Period) -> Iterator[dict[str, Any]]:
    """Policies with a version made in the period, with those versions."""
    items = api.pages("/policies")
    for policy in items or ():
        pid = str(policy.get("id"))
        versions = api.pages(f"/policies/{quote(pid, safe='')}/versions")
        kept = [v for v in versions or () if _in(period, v.get("changed_at"))]
        if kept or _in(period, policy.get("updated_at")) or _in(period, policy.get("created_at")):
            yield {"policy": policy, "versions": kept}


def other(api: _Api, collection: str, period: Period) -> Iterator[dict[str, Any]] | None:
    items = api.pages(f"/{collection}")
    if items is None:
        return None
    return (
        item
        for item in items
        if _in(period, item.get("updated_at")) or _in(period, item.get("created_at"))
    )


def approvals(tenant_id: str, period: Period) -> Iterator[dict[str, Any]]:
    from workflow_service.approvals.models import ApprovalRequest
    from workflow_service.approvals.service import request_dict

    last = ""
    while True:
        rows = list(
            ApprovalRequest.select()
            .where(
                (ApprovalRequest.tenant_id == tenant_id)
                & (ApprovalRequest.created_at >= period.start)
                & (ApprovalRequest.created_at < period.until)
                & (ApprovalRequest.id > last)
            )
            .order_by(ApprovalRequest.id)
            .limit(BATCH)
        )
        for row in rows:
            yield request_dict(row, with_refusals=True)
        if len(rows) < BATCH:
            return
        last = rows[-1].id


def executions(tenant_id: str, period: Period) -> Iterator[dict[str, Any]]:
    last = ""
    while True:
        rows = list(
            Execution.select()
            .where(
                (Execution.tenant_id == tenant_id)
                & (Execution.created_at >= period.start)
                & (Execution.created_at < period.until)
                & (Execution.id > last)
            )
            .order_by(Execution.id)
            .limit(BATCH)
        )
        for row in rows:
            steps = list(StepRun.select().where(StepRun.execution == row.id).order_by(StepRun.id))
            yield execution_body(row, steps)
        if len(rows) < BATCH:
            return
        last = rows[-1].id


def slice_bounds(tenant_id: str, period: Period) -> tuple[int, int] | None:
    """The first and last sequence numbers of the entries that happened in the period."""
    bounds = (
        AuditEntry.select(peewee.fn.MIN(AuditEntry.seq), peewee.fn.MAX(AuditEntry.seq))
        .where(
            (AuditEntry.tenant_id == tenant_id)
            & (AuditEntry.occurred_at >= period.start)
            & (AuditEntry.occurred_at < period.until)
        )
        .tuples()
        .first()
    )
    if not bounds or bounds[0] is None:
        return None
    return int(bounds[0]), int(bounds[1])


def audit_slice(tenant_id: str, bounds: tuple[int, int] | None) -> Iterator[dict[str, Any]]:
    """The chain from the first to the last entry that happened in the period, in chain
    order: entries appended in between that happened outside it are links too, and
    without them the package could not be checked on its own."""
    if bounds is None:
        return
    after, last = bounds[0] - 1, bounds[1]
    while True:
        rows = list(
            AuditEntry.select()
            .where(
                (AuditEntry.tenant_id == tenant_id)
                & (AuditEntry.seq > after)
                & (AuditEntry.seq <= last)
            )
            .order_by(AuditEntry.seq)
            .limit(BATCH)
        )
        for row in rows:
            yield entry_dict(row)
        if len(rows) < BATCH:
            return
        after = rows[-1].seq


def entry_dict(e: AuditEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "occurred_at": iso(e.occurred_at),
        "actor": e.actor,
        "action": e.action,
        "entity_type": e.entity_type,
        "entity_id": e.entity_id,
        "source_id": e.source_id,
        "digest": e.digest,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


def _write_lines(
    archive: zipfile.ZipFile, name: str, items: Iterable[dict[str, Any]]
) -> dict[str, Any]:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    digest, size, count = hashlib.sha256(), 0, 0
    with archive.open(info, "w") as out:
        for item in items:
            line = (json.dumps(item, sort_keys=True, default=str) + "\n").encode()
            digest.update(line)
            size += len(line)
            count += 1
            out.write(line)
    return {"name": name, "sha256": digest.hexdigest(), "size": size, "records": count}


def build(
    tenant_id: str,
    period: Period,
    api: Any,
    sink: Callable[[str, Any], Any],
    progress: Callable[[int, str], None] = lambda percent, message: None,
) -> Any:
    """Build the package and hand it to ``sink(name, binary_file)``; returns what the
    sink returns (the stored file). Raises :class:`PackageError` when the api cannot
    be read (the job is retried)."""
    reader = _Api(api, tenant_id)
    with tempfile.TemporaryFile() as spool:
        files: list[dict[str, Any]] = []
        missing: list[str] = []
        with zipfile.ZipFile(spool, "w") as archive:
            progress(5, "policies")
            try:
                files.append(_write_lines(archive, "policies.jsonl", policies(reader, period)))
                for index, collection in enumerate(OTHER_COLLECTIONS):
                    progress(20 + 5 * index, collection)
                    items = other(reader, collection, period)
                    if items is None:
                        missing.append(collection)
                    else:
                        files.append(_write_lines(archive, f"{collection}.jsonl", items))
            except ApiUnavailable as exc:
                raise PackageError(str(exc)) from None
            progress(40, "approvals")
            files.append(_write_lines(archive, "approvals.jsonl", approvals(tenant_id, period)))
            progress(55, "executions")
            files.append(_write_lines(archive, "executions.jsonl", executions(tenant_id, period)))
            progress(70, "audit log")
            bounds = slice_bounds(tenant_id, period)
            log = _write_lines(archive, "audit_log.jsonl", audit_slice(tenant_id, bounds))
            files.append(log)
            progress(85, "verifying the chain")
            head = chain.head_of(tenant_id)
            manifest = {
                "tenant": tenant_id,
                "period": period.to_dict(),
                "generated_at": iso(utcnow()),
                "files": files,
                "not_in_api": missing,
                "audit_log": _log_summary(tenant_id, bounds),
                "chain": {"head": head, "verify": chain.verify(tenant_id, upto=head["seq"])},
            }
            info = zipfile.ZipInfo("manifest.json", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, json.dumps(manifest, indent=2, sort_keys=True))
        spool.seek(0)
        progress(95, "storing")
        return sink(f"audit-{tenant_id}-{period.label()}.zip", spool)


#: How an entry's hash is made, for whoever checks a package without this service.
HASH_RULE = (
    "hash = SHA-256 of the JSON object of the entry's tenant_id (the manifest's tenant), "
    "seq, source_id, occurred_at (as YYYY-MM-DDTHH:MM:SS.ffffff, UTC, no zone), actor, "
    "action, entity_type, entity_id, digest and prev_hash, with sorted keys, separators "
    "',' and ':' and no spaces, non-ASCII as \\u escapes; prev_hash is the hash of the "
    "entry before (64 zeros for entry 1)"
)


def _log_summary(tenant_id: str, bounds: tuple[int, int] | None) -> dict[str, Any]:
    if bounds is None:
        return {"first_seq": None, "last_seq": None, "last_hash": None, "hash_rule": HASH_RULE}
    last = AuditEntry.get((AuditEntry.tenant_id == tenant_id) & (AuditEntry.seq == bounds[1]))
    return {
        "first_seq": bounds[0],
        "last_seq": bounds[1],
        "last_hash": last.hash,
        "hash_rule": HASH_RULE,
    }


def store_package(tenant_id: str, requested_by: str, job_id: str, settings: Any):
    """A sink for :func:`build` writing through the file store, keyed on the job."""
    from workflow_service.storage.store import FileStore

    store = FileStore.from_settings(settings)

    def sink(name: str, source: Any) -> Any:
        with store.create(
            tenant=tenant_id,
            kind="audit_package",
            name=name,
            content_type="application/zip",
            created_by=requested_by,
            job_id=job_id,
        ) as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                out.write(chunk)
        return out.file

    return sink


def run_package(
    tenant_id: str, start: str, until: str, requested_by: str, job_id: str, api: Any, sink: Any
) -> dict[str, Any]:
    """Build a package and record that it was built; the file's descriptor."""
    period = Period(datetime.fromisoformat(start), datetime.fromisoformat(until))
    stored = build(tenant_id, period, api, sink, report_progress)
    record(
        tenant_id,
        f"audit_package:{job_id}",
        "audit_package.built",
        actor=requested_by,
        entity_type="file",
        entity_id=stored.id,
        digest={"period": period.to_dict(), "sha256": stored.sha256, "size": stored.size},
    )
    report_progress(100, "done")
    return stored.descriptor(period=period.to_dict())
