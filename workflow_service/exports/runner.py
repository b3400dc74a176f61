"""Writing one export: pages of the api's list, straight into the file store.

The job's id names its file (``job_id`` in the store), so a retried export replaces
the file it started instead of adding one: the same file id per job.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from shared.jobstatus import report_progress, report_subject
from workflow_service.apiclient import iter_entities
from workflow_service.exports.formats import CONTENT_TYPES, EXPORTABLE, WRITERS
from workflow_service.storage.models import FileKind

#: Progress is reported after every this many rows.
PROGRESS_ROWS = 1000


def _spool_dir(store: Any) -> Path | None:
    root = getattr(store, "root", None)
    return Path(root) / ".spool" if root is not None else None


def export(
    api: Any, store: Any, *, tenant: str, spec: dict[str, Any], job_id: str, today: dt.date
) -> dict[str, Any]:
    """Write the export ``spec`` asks for; the file's descriptor with the row count."""
    kind = EXPORTABLE[spec["entity_type"]]
    file_format = spec["format"]
    report_subject(entity_type=kind.entity_type, format=file_format)
    name = f"{kind.collection}-{today.isoformat()}.{file_format}"
    rows = 0
    with store.create(
        tenant=tenant,
        kind=FileKind.EXPORT,
        name=name,
        content_type=CONTENT_TYPES[file_format],
        created_by=spec["requested_by"],
        job_id=job_id,
    ) as out:
        writer = WRITERS[file_format](out, kind.columns, spool_dir=_spool_dir(store))
        try:
            # One page of the api's list in memory at a time (iter_entities).
            for item in iter_entities(api, tenant, kind.collection, spec["filters"]):
                writer.row(item)
                rows += 1
                if rows % PROGRESS_ROWS == 0:
                    # The api gives no total: the message says how far it is.
                    report_progress(50, f"{rows} rows written")
            writer.close()
        except BaseException:
            writer.discard()
            raise
    assert out.file is not None
    report_progress(100, f"{rows} rows written")
    return out.file.descriptor(rows=rows, entity_type=kind.entity_type, format=file_format)
