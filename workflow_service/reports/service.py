"""Producing one report: rows from its source, rendered into the file store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.jobstatus import report_progress
from workflow_service.reports import data
from workflow_service.reports.definitions import CONTENT_TYPES, ReportSpec
from workflow_service.reports.render import EXTENSIONS, render
from workflow_service.storage import FileStore, StoredFile
from workflow_service.storage.models import FileKind

#: The actor that generates reports, on governance.reporting.
REPORT_QUEUE = "governance.reporting"
REPORT_ACTOR = "generate_report"


def file_name(spec: ReportSpec, now: datetime) -> str:
    return f"{spec.kind}-{now.strftime('%Y%m%d-%H%M%S')}.{EXTENSIONS[spec.format]}"


def produce(
    spec: ReportSpec,
    *,
    tenant: str,
    requested_by: str,
    job_id: str | None,
    api: Any,
    store: FileStore,
    now: datetime | None = None,
) -> tuple[StoredFile, dict[str, Any]]:
    """Build, render and store the report; its file and its descriptor (the job's
    result). Running it again for the same ``job_id`` replaces the same file."""
    now = now or store.clock()
    report_progress(5, "reading data")
    report = data.build(spec.kind, api, tenant, spec.parsed_filters(), now)
    report_progress(60, f"rendering {len(report.rows)} rows as {spec.format}")
    with store.create(
        tenant=tenant,
        kind=FileKind.REPORT,
        name=file_name(spec, now),
        content_type=CONTENT_TYPES[spec.format],
        created_by=requested_by,
        job_id=job_id,
    ) as out:
        render(report, spec.format, out)
    stored = out.file
    assert stored is not None
    descriptor = stored.descriptor(
        kind=spec.kind, format=spec.format, **{k: v for k, v in report.counts.items()}
    )
    return stored, descriptor
