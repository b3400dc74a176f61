"""Audit trail migrations (versions 200-209)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _audit_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The tables as they were at version 200, frozen.
    class Frozen(peewee.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class AuditPending(Frozen):
        id = peewee.AutoField()
        tenant_id = peewee.CharField(max_length=64)
        source_id = peewee.CharField(max_length=200)
        occurred_at = peewee.DateTimeField()
        actor = peewee.CharField(max_length=128)
        action = peewee.CharField(max_length=64)
        entity_type = peewee.CharField(max_length=32)
        entity_id = peewee.CharField(max_length=64)
        digest = peewee.TextField()  # JSON
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "audit_pending"
            indexes = (
                (("tenant_id", "source_id"), True),
                (("created_at",), False),
            )

    class AuditEntry(Frozen):
        id = peewee.AutoField()
        tenant_id = peewee.CharField(max_length=64)
        seq = peewee.BigIntegerField()
        source_id = peewee.CharField(max_length=200)
        occurred_at = peewee.DateTimeField()
        actor = peewee.CharField(max_length=128)
        action = peewee.CharField(max_length=64)
        entity_type = peewee.CharField(max_length=32)
        entity_id = peewee.CharField(max_length=64)
        digest = peewee.TextField()  # JSON
        prev_hash = peewee.CharField(max_length=64)
        hash = peewee.CharField(max_length=64)
        recorded_at = peewee.DateTimeField()

        class Meta:
            table_name = "audit_entry"
            indexes = (
                (("tenant_id", "seq"), True),
                (("tenant_id", "source_id"), True),
                (("tenant_id", "entity_type", "entity_id", "seq"), False),
                (("tenant_id", "actor", "seq"), False),
                (("tenant_id", "occurred_at"), False),
            )

    class AuditHead(Frozen):
        tenant_id = peewee.CharField(max_length=64, primary_key=True)
        seq = peewee.BigIntegerField(default=0)
        hash = peewee.CharField(max_length=64)
        updated_at = peewee.DateTimeField()

        class Meta:
            table_name = "audit_head"

    db.create_tables([AuditPending, AuditEntry, AuditHead])


MIGRATIONS: list[Migration] = [
    Migration(
        200,
        "audit trail: pending rows, the hash-chained log, each tenant's head",
        _audit_tables,
        service="workflow_service",
    ),
]
