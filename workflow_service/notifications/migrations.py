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


MIGRATIONS: list[Migration] = [
    Migration(130, "notification deliveries", _delivery_table, service="workflow_service"),
    Migration(
        131,
        "webhook signing keys per tenant",
        _signing_key_table,
        service="workflow_service",
    ),
]
