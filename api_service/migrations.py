"""The api service's schema history, applied by ``python -m api_service migrate``."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from api_service.models import MODELS, DeadlineNotice
from shared.db import Migration


def _initial(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The first version creates the tables as the models describe them; later
    # versions use ``migrator`` operations (add_column, add_index...) so that an
    # existing database moves forward without being rebuilt.
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS)


def _deadline_notices(db: peewee.Database, migrator: SchemaMigrator) -> None:
    with db.bind_ctx([DeadlineNotice]):
        db.create_tables([DeadlineNotice])
    # The deadline scan looks policies up by review date.
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS policy_next_review_date ON policy (next_review_date)"
    )


MIGRATIONS: list[Migration] = [
    Migration(
        1, "policies, versions, outbox, idempotency records", _initial, service="api_service"
    ),
    Migration(2, "deadline notices", _deadline_notices, service="api_service"),
]
