import peewee
import pytest

from shared.db import (
    Migration,
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


MIGRATIONS = [Migration(1, "things", create_things), Migration(2, "colour", add_colour)]


def test_migrations_apply_once_in_order(make_database_url):
    db = open_database(make_database_url("migrations"))
    with pytest.raises(SchemaNotCurrent, match="python -m demo migrate"):
        check_current(db, MIGRATIONS, "demo")

    assert [m.version for m in migrate(db, MIGRATIONS)] == [1, 2]
    assert migrate(db, MIGRATIONS) == []
    assert applied_versions(db) == {1, 2}
    check_current(db, MIGRATIONS, "demo")
    assert "colour" in [c.name for c in db.get_columns("things")]
    db.close()


def test_a_failing_migration_leaves_nothing_half_applied(make_database_url):
    db = open_database(make_database_url("migrations"))

    def broken(db, migrator):
        db.execute_sql("CREATE TABLE half (id INTEGER PRIMARY KEY)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrate(db, [MIGRATIONS[0], Migration(2, "broken", broken)])
    assert applied_versions(db) == {1}
    db.close()
