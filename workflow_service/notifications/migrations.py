"""Notification migrations (versions 130-169)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _execution_table(db: peewee.Database) -> type[peewee.Model]:
    # The core's execution table (migration 1), only as the target of foreign keys.
    class Execution(peewee.Model):
        id = peewee.CharField(max_length=36, primary_key=True)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "execution"

    return Execution


def _delivery_table(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The table as it was at version 130, frozen (migration 132 adds the re-send columns).
    class Delivery(peewee.Model):
        id = peewee.CharField(max_length=36, primary_key=True)
        tenant_id = peewee.CharField(max_length=64)
        execution = peewee.ForeignKeyField(_execution_table(db), on_delete="CASCADE")
        step_key = peewee.CharField(max_length=64)
        recipient = peewee.CharField(max_length=512)
        channel = peewee.CharField(max_length=16)
        address = peewee.CharField(max_length=512, null=True)
        subject = peewee.CharField(max_length=300, default="")
        body = peewee.TextField(default="")
        html = peewee.TextField(null=True)
        payload = peewee.TextField(null=True)  # JSON
        entity_type = peewee.CharField(max_length=32, null=True)
        entity_id = peewee.CharField(max_length=64, null=True)
        status = peewee.CharField(max_length=16)
        attempts = peewee.IntegerField(default=0)
        claim_token = peewee.CharField(max_length=36, null=True)
        claimed_at = peewee.DateTimeField(null=True)
        response_status = peewee.IntegerField(null=True)
        response = peewee.TextField(null=True)
        error = peewee.TextField(null=True)
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()
        sent_at = peewee.DateTimeField(null=True)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "delivery"
            indexes = (
                (("execution", "step_key", "recipient", "channel"), True),
                (("status", "updated_at"), False),
            )

    db.create_tables([Delivery])


def _signing_key_table(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The table as it was at version 131, frozen.
    class WebhookSigningKey(peewee.Model):
        id = peewee.CharField(max_length=36, primary_key=True)
        tenant_id = peewee.CharField(max_length=64)
        generation = peewee.IntegerField()
        salt = peewee.CharField(max_length=64)
        created_at = peewee.DateTimeField()
        created_by = peewee.CharField(max_length=128, null=True)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "webhook_signing_key"
            indexes = ((("tenant_id", "generation"), True),)

    db.create_tables([WebhookSigningKey])


def _resend_columns(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # Checked first: before migration 130 was frozen it created the table from the
    # model of its day, so a database made then may have them.
    from playhouse.migrate import migrate

    columns = {c.name for c in db.get_columns("delivery")}
    operations = [
        migrator.add_column("delivery", name, field)
        for name, field in (
            ("last_attempt_at", peewee.DateTimeField(null=True)),
            ("next_resend_at", peewee.DateTimeField(null=True)),
            ("resends", peewee.IntegerField(default=0)),
        )
        if name not in columns
    ]
    if "delivery_next_resend_at" not in {i.name for i in db.get_indexes("delivery")}:
        operations.append(migrator.add_index("delivery", ("next_resend_at",), False))
    if operations:
        migrate(*operations)


MIGRATIONS: list[Migration] = [
    Migration(130, "notification deliveries", _delivery_table, service="workflow_service"),
    Migration(
        131,
        "webhook signing keys per tenant",
        _signing_key_table,
        service="workflow_service",
    ),
    Migration(
        132,
        "deliveries: last attempt, next re-send time, re-sends made",
        _resend_columns,
        service="workflow_service",
    ),
]
