"""Audit trail migrations (versions 200-209)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _audit_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from workflow_service.audit.models import AUDIT_MODELS

    with db.bind_ctx(AUDIT_MODELS):  # the database given, whatever the models are bound to
        db.create_tables(AUDIT_MODELS)


MIGRATIONS: list[Migration] = [
    Migration(
        200,
        "audit trail: pending rows, the hash-chained log, each tenant's head",
        _audit_tables,
        service="workflow_service",
    ),
]
