"""Migration 171 adds a column to databases migrated before it existed."""

from __future__ import annotations

from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run

from shared.db import migrate
from workflow_service.migrations import all_migrations


def test_notify_channels_is_added_to_an_older_schema(workflow_db):
    # Given: a database as it was after migration 170
    run(
        SchemaMigrator.from_database(workflow_db).drop_column("approval_request", "notify_channels")
    )
    workflow_db.execute_sql(
        "DELETE FROM schema_history WHERE service = 'workflow_service' AND version = 171"
    )
    # When: it is migrated
    applied = migrate(workflow_db, all_migrations())
    # Then: 171 ran and the column is back
    assert [m.version for m in applied] == [171]
    columns = {c.name for c in workflow_db.get_columns("approval_request")}
    assert "notify_channels" in columns
