"""Import migrations (versions 225-229; exports keep 220-224 free)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _import_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The tables as they were at version 225, frozen.
    class ImportJob(peewee.Model):
        id = peewee.CharField(max_length=36, primary_key=True)
        tenant_id = peewee.CharField(max_length=64)
        created_by = peewee.CharField(max_length=128)
        entity_type = peewee.CharField(max_length=32, default="policy")
        idempotency_key = peewee.CharField(max_length=200, null=True)
        content_sha256 = peewee.CharField(max_length=64)
        file_name = peewee.CharField(max_length=255)
        file_format = peewee.CharField(max_length=8)
        dry_run = peewee.BooleanField(default=False)
        status = peewee.CharField(max_length=16)
        total_rows = peewee.IntegerField(default=0)
        rows_done = peewee.IntegerField(default=0)
        created = peewee.IntegerField(default=0)
        updated = peewee.IntegerField(default=0)
        unchanged = peewee.IntegerField(default=0)
        valid = peewee.IntegerField(default=0)
        failed = peewee.IntegerField(default=0)
        job_id = peewee.CharField(max_length=36)
        current_job_id = peewee.CharField(max_length=36, null=True)
        chunks = peewee.IntegerField(default=0)
        report = peewee.TextField(null=True)  # JSON
        error = peewee.TextField(null=True)
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()
        finished_at = peewee.DateTimeField(null=True)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "import_job"
            indexes = ((("tenant_id", "created_by", "idempotency_key"), True),)

    class ImportRow(peewee.Model):
        id = peewee.AutoField()
        import_job = peewee.ForeignKeyField(ImportJob, on_delete="CASCADE")
        row_number = peewee.IntegerField()
        data = peewee.TextField()  # JSON
        status = peewee.CharField(max_length=16)
        policy_id = peewee.CharField(max_length=36, null=True)
        errors = peewee.TextField(null=True)  # JSON

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "import_row"
            indexes = (
                (("import_job", "row_number"), True),
                (("import_job", "status"), False),
            )

    db.create_tables([ImportJob, ImportRow])


MIGRATIONS: list[Migration] = [
    Migration(225, "imports and their rows", _import_tables, service="workflow_service"),
]
