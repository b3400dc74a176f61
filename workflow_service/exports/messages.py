"""The export queue's message (built by the web; imports no actor module)."""

from __future__ import annotations

from typing import Any

import dramatiq

from workflow_service.storage.jobs import job_message

EXPORT_QUEUE = "governance.export"
EXPORT_ACTOR = "export_entities"


def export_message(
    tenant: str, requested_by: str, entity_type: str, file_format: str, filters: dict[str, Any]
) -> dramatiq.Message:
    spec = {
        "entity_type": entity_type,
        "format": file_format,
        "filters": filters,
        "requested_by": requested_by,
    }
    return job_message(EXPORT_QUEUE, EXPORT_ACTOR, (tenant, spec), tenant=tenant)
