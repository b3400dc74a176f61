"""Stored-file and report migrations (versions 210-219)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _file_table(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from workflow_service.files.models import FILE_MODELS

    with db.bind_ctx(FILE_MODELS):  # the database given, whatever the models are bound to
        db.create_tables(FILE_MODELS)


MIGRATIONS: list[Migration] = [
    Migration(210, "stored files", _file_table, service="workflow_service"),
]
