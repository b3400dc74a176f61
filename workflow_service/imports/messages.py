"""The import queue's message, built by the web (first chunk) and by workers
(continuations) alike; imports no actor module."""

from __future__ import annotations

import dramatiq

from workflow_service.imports.models import ImportJob
from workflow_service.storage.jobs import job_message

IMPORT_QUEUE = "governance.import"
IMPORT_ACTOR = "import_entities"
IMPORT_FAILED_ACTOR = "import_failed"


def import_message(
    job: ImportJob, job_id: str | None = None, parent: str | None = None
) -> dramatiq.Message:
    return job_message(
        IMPORT_QUEUE,
        IMPORT_ACTOR,
        (job.id,),
        tenant=job.tenant_id,
        job_id=job_id,
        parent_job_id=parent,
    )
