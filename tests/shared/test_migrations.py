import peewee
import pytest

from api_service.migrations import MIGRATIONS as API_MIGRATIONS
from shared.db import (
    Migration,
    MigrationError,
    SchemaNotCurrent,
    applied_versions,
    check_current,
    migrate,
    open_database,
)


def create_things(db, migrator):
    db.execute_sql("CREATE TABLE things (id INTEGER PRIMARY KEY, name VARCHAR(20))")


def add_colour(db, migrator):
    from playhouse.migrate import migrate as run

    run(migrator.add_column("things", "colour", peewee.CharField(null=True)))


MIGRATIONS = [
    Migration(1, "things", create_things, service="demo"),
    Migration(2, "colour", add_colour, service="demo"),
]


def test_migrations_apply_once_in_order(make_database_url):
    db = open_database(make_database_url("migrations"))
    with pytest.raises(SchemaNotCurrent, match="python -m demo migrate"):
        check_current(db, MIGRATIONS)

    assert [m.version for m in migrate(db, MIGRATIONS)] == [1, 2]
    assert migrate(db, MIGRATIONS) == []
    assert applied_versions(db, "demo") == {1, 2}
    check_current(db, MIGRATIONS)
    assert "colour" in [c.name for c in db.get_columns("things")]
    db.close()


def test_a_failing_migration_leaves_nothing_half_applied(make_database_url):
    db = open_database(make_database_url("migrations"))

    def broken(db, migrator):
        db.execute_sql("CREATE TABLE half (id INTEGER PRIMARY KEY)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrate(db, [MIGRATIONS[0], Migration(2, "broken", broken, service="demo")])
    assert applied_versions(db, "demo") == {1}
    db.close()


def test_two_services_can_share_one_database(make_database_url):
    # One DATABASE_URL for both services: each keeps its own history, so neither
    # mistakes the other's version 1 for its own.
    from workflow_service.migrations import all_migrations

    db = open_database(make_database_url("shared"))
    workflow = all_migrations()
    assert [m.version for m in migrate(db, API_MIGRATIONS)] == [m.version for m in API_MIGRATIONS]
    assert [m.version for m in migrate(db, workflow)] == sorted(m.version for m in workflow)
    check_current(db, API_MIGRATIONS)
    check_current(db, workflow)
    assert {"policy", "outbox", "workflow", "execution", "step_run"} <= set(db.get_tables())
    db.close()


def test_a_database_of_an_earlier_release_keeps_its_history(make_database_url):
    # Given a database migrated when the history had no service column
    db = open_database(make_database_url("legacy"))
    create_things(db, None)
    db.execute_sql("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT)")
    db.execute_sql("INSERT INTO schema_migrations VALUES (1, 'things')")
    # When it is migrated, version 1 is not run again; only 2 is
    assert [m.version for m in migrate(db, MIGRATIONS)] == [2]
    assert applied_versions(db, "demo") == {1, 2}
    db.close()


def test_an_earlier_releases_api_history_is_not_taken_for_the_workflows(make_database_url):
    # Given an api database of the earlier release, now shared with the workflow service
    from workflow_service.migrations import all_migrations

    db = open_database(make_database_url("legacy-api"))
    migrate(db, API_MIGRATIONS)
    db.execute_sql("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT)")
    db.execute_sql(
        f"INSERT INTO schema_migrations VALUES (1, {db.param})", (API_MIGRATIONS[0].name,)
    )
    db.execute_sql("DELETE FROM schema_history")
    workflow = all_migrations()
    # When both migrate, the api's version 1 is the api's, and the workflow's runs
    assert 1 not in [m.version for m in migrate(db, API_MIGRATIONS)]
    assert [m.version for m in migrate(db, workflow)] == sorted(m.version for m in workflow)
    assert {"workflow", "execution"} <= set(db.get_tables())
    db.close()


def test_a_list_mixing_services_is_refused(make_database_url):
    db = open_database(make_database_url("mixed"))
    with pytest.raises(MigrationError, match="one service"):
        migrate(db, [*MIGRATIONS, *API_MIGRATIONS])
    db.close()
