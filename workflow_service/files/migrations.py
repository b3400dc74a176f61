"""Stored-file and report migrations (versions 210-219)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _file_table(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The table as it was at version 210, frozen.
    class StoredFile(peewee.Model):
        id = peewee.CharField(max_length=36, primary_key=True)
        tenant_id = peewee.CharField(max_length=64)
        kind = peewee.CharField(max_length=32)
        name = peewee.CharField(max_length=255)
        content_type = peewee.CharField(max_length=128)
        size = peewee.BigIntegerField(default=0)
        sha256 = peewee.CharField(max_length=64)
        created_by = peewee.CharField(max_length=128)
        job_id = peewee.CharField(max_length=64, null=True)
        created_at = peewee.DateTimeField()
        expires_at = peewee.DateTimeField()
        path = peewee.CharField(max_length=255)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "stored_file"
            indexes = (
                (("kind", "job_id"), True),
                (("tenant_id", "created_at"), False),
                (("expires_at",), False),
            )

    db.create_tables([StoredFile])


MIGRATIONS: list[Migration] = [
    Migration(210, "stored files", _file_table, service="workflow_service"),
]
