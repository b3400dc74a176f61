"""Import migrations (versions 225-229; exports keep 220-224 free)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _import_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from workflow_service.imports.models import IMPORT_MODELS

    with db.bind_ctx(IMPORT_MODELS):  # the database given, whatever the models are bound to
        db.create_tables(IMPORT_MODELS)


MIGRATIONS: list[Migration] = [
    Migration(225, "imports and their rows", _import_tables, service="workflow_service"),
]
