"""Directory migrations (versions 100-129)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _directory_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from workflow_service.users.models import DIRECTORY_MODELS

    with db.bind_ctx(DIRECTORY_MODELS):  # the database given, whatever the models are bound to
        db.create_tables(DIRECTORY_MODELS)


MIGRATIONS: list[Migration] = [
    Migration(
        100, "user directory: users and their roles", _directory_tables, service="workflow_service"
    ),
]
