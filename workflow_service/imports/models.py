"""An import and its rows.

The rows of the file are kept when the import is accepted, so the worker never needs
the upload again and a resumed or continued run reads only the rows still pending.
``ImportRow.status`` is the checkpoint: rows are marked done in batches (one
transaction per batch of up to 100 rows), and a run skips every row that is not
pending. A row done twice (a worker killed between its api call and the checkpoint)
is harmless: the api replays the first answer to the same idempotency key.
"""

from __future__ import annotations

import uuid

import peewee

from shared.db import utcnow
from workflow_service.db import BaseModel, JSONField


class ImportStatus:
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    FINAL = (SUCCEEDED, FAILED)


class RowStatus:
    PENDING = "pending"
    CREATED = "created"
    UPDATED = "updated"
    #: An update whose values the policy already had (no call made).
    UNCHANGED = "unchanged"
    #: Dry run: the row passed every check.
    VALID = "valid"
    FAILED = "failed"
    COUNTED = (CREATED, UPDATED, UNCHANGED, VALID, FAILED)


class ImportJob(BaseModel):
    id = peewee.CharField(max_length=36, primary_key=True, default=lambda: str(uuid.uuid4()))
    tenant_id = peewee.CharField(max_length=64)
    created_by = peewee.CharField(max_length=128)
    entity_type = peewee.CharField(max_length=32, default="policy")
    #: The caller's Idempotency-Key; unique per (tenant, caller).
    idempotency_key = peewee.CharField(max_length=200, null=True)
    #: SHA-256 of the file: a key sent again with another file is refused.
    content_sha256 = peewee.CharField(max_length=64)
    file_name = peewee.CharField(max_length=255)
    file_format = peewee.CharField(max_length=8)
    dry_run = peewee.BooleanField(default=False)
    status = peewee.CharField(max_length=16, default=ImportStatus.QUEUED)
    total_rows = peewee.IntegerField(default=0)
    #: Rows done as of the last checkpoint (progress every 100 rows).
    rows_done = peewee.IntegerField(default=0)
    created = peewee.IntegerField(default=0)
    updated = peewee.IntegerField(default=0)
    unchanged = peewee.IntegerField(default=0)
    valid = peewee.IntegerField(default=0)
    failed = peewee.IntegerField(default=0)
    #: The first message's job id (what POST /imports answered) and the current one's.
    job_id = peewee.CharField(max_length=36)
    current_job_id = peewee.CharField(max_length=36, null=True)
    #: How many messages (chunks) ran it.
    chunks = peewee.IntegerField(default=0)
    #: The report file's descriptor once the import is finished.
    report = JSONField(null=True)
    error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "import_job"
        indexes = ((("tenant_id", "created_by", "idempotency_key"), True),)


class ImportRow(BaseModel):
    id = peewee.AutoField()
    import_job = peewee.ForeignKeyField(ImportJob, backref="rows", on_delete="CASCADE")
    #: The row's number in the file (the header is row 1, so data starts at 2).
    row_number = peewee.IntegerField()
    data = JSONField()
    status = peewee.CharField(max_length=16, default=RowStatus.PENDING)
    policy_id = peewee.CharField(max_length=36, null=True)
    #: Per-row errors: [{"column", "message"}].
    errors = JSONField(null=True)

    class Meta:
        table_name = "import_row"
        indexes = ((("import_job", "row_number"), True), (("import_job", "status"), False))


IMPORT_MODELS = [ImportJob, ImportRow]
