"""Notification migrations (versions 130-169)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _delivery_table(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from workflow_service.notifications.models import NOTIFICATION_MODELS

    with db.bind_ctx(NOTIFICATION_MODELS):  # the database given, whatever the models are bound to
        db.create_tables(NOTIFICATION_MODELS)


def _signing_key_table(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from workflow_service.notifications.models import SIGNING_KEY_MODELS

    with db.bind_ctx(SIGNING_KEY_MODELS):
        db.create_tables(SIGNING_KEY_MODELS)


def _resend_columns(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # 130 creates the table from the current model, so a fresh database has them already.
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
