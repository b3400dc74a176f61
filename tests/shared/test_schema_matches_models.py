"""A migrated database has exactly the schema the models declare.

Migrations describe their tables as they were at their version (frozen), so nothing
keeps them in step with the models but this test: each service's migrations run on an
empty database, the current models' tables are created in another, and the two are
compared through peewee's introspection (tables, columns, indexes, foreign keys). A
model changed without a migration, or a migration that creates what no model declares,
fails here with the differences listed.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any

import peewee
import pytest

from shared.db import (
    HISTORY_TABLE,
    LEGACY_HISTORY_TABLE,
    Migration,
    is_postgres,
    migrate,
    open_database,
)

#: Modules that start processes or connect a broker when imported: they declare no
#: tables, and importing them here would start what a test must not.
_ENTRY_MODULES = {"__main__", "wsgi", "worker", "broker", "actors"}


def _modules(package: str) -> Iterator[str]:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.rsplit(".", 1)[-1] not in _ENTRY_MODULES:
            yield info.name


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def service_models(package: str, base: type[peewee.Model]) -> list[type[peewee.Model]]:
    """Every table model of ``package``: the subclasses of its ``base`` model, wherever
    they are declared (after importing each of its modules)."""
    for name in _modules(package):
        importlib.import_module(name)
    return sorted(_subclasses(base), key=lambda model: model._meta.table_name)


def api_service() -> tuple[list[Migration], list[type[peewee.Model]]]:
    from api_service.migrations import MIGRATIONS
    from api_service.models import BaseModel

    return MIGRATIONS, service_models("api_service", BaseModel)


def workflow_service() -> tuple[list[Migration], list[type[peewee.Model]]]:
    from workflow_service.db import BaseModel
    from workflow_service.migrations import all_migrations

    return all_migrations(), service_models("workflow_service", BaseModel)


# ------------------------------------------------------------------------ introspection


def _char_lengths(db: peewee.Database, table: str) -> dict[str, int | None]:
    # PostgreSQL's get_columns names the type without its length (character varying).
    if not is_postgres(db):
        return {}
    cursor = db.execute_sql(
        "SELECT column_name, character_maximum_length FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    )
    return dict(cursor.fetchall())


def _on_delete(db: peewee.Database, table: str) -> dict[str, str]:
    # What happens to a row when the row it refers to is deleted, per column.
    if is_postgres(db):
        cursor = db.execute_sql(
            "SELECT a.attname, c.confdeltype FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.contype = 'f' AND c.conrelid = %s::regclass",
            (table,),
        )
        codes = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL"}
        return {column: codes.get(code, "SET DEFAULT") for column, code in cursor.fetchall()}
    rows = db.execute_sql(f'PRAGMA foreign_key_list("{table}")').fetchall()
    return {row[3]: row[6] for row in rows}  # from, on_delete


def _full_text_tables(db: peewee.Database) -> set[str]:
    # SQLite's full-text tables (virtual tables) and the shadow tables holding their
    # index: no model declares them (the text search tests cover them).
    if is_postgres(db):
        return set()
    virtual = {
        name
        for (name,) in db.execute_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND sql LIKE 'CREATE VIRTUAL TABLE%'"
        )
    }
    return {
        table
        for table in db.get_tables()
        if table in virtual or any(table.startswith(name + "_") for name in virtual)
    }


def _declarable(index: peewee.IndexMetadata) -> bool:
    # Models declare b-tree indexes on columns; a GIN trigram index on an expression
    # (the text search's, on PostgreSQL) is the migrations' own.
    return " USING gin " not in (index.sql or "")


def schema(db: peewee.Database) -> dict[str, dict[str, Any]]:
    """Each table's columns (type, null, primary key, default), indexes (columns and
    whether unique) and foreign keys, as the database reports them. Full-text search
    structures (SQLite virtual tables, PostgreSQL GIN indexes) are left out: no model
    can declare them."""
    tables = {}
    full_text = _full_text_tables(db)
    for table in db.get_tables():
        if table in (HISTORY_TABLE, LEGACY_HISTORY_TABLE) or table in full_text:
            continue
        lengths = _char_lengths(db, table)
        columns = {
            c.name: {
                "type": c.data_type.lower()
                + (f"({lengths[c.name]})" if lengths.get(c.name) else ""),
                "null": c.null,
                "primary key": c.primary_key,
                "default": c.default,
            }
            for c in db.get_columns(table)
        }
        indexes = sorted(
            (tuple(i.columns), "unique" if i.unique else "not unique")
            for i in db.get_indexes(table)
            if _declarable(i)
        )
        on_delete = _on_delete(db, table)
        foreign_keys = sorted(
            (fk.column, f"{fk.dest_table}.{fk.dest_column}", on_delete.get(fk.column))
            for fk in db.get_foreign_keys(table)
        )
        tables[table] = {"columns": columns, "indexes": indexes, "foreign keys": foreign_keys}
    return tables


def _column(column: dict[str, Any] | None) -> str:
    if column is None:
        return "no such column"
    text = column["type"] + (" null" if column["null"] else " not null")
    if column["primary key"]:
        text += " primary key"
    if column["default"] is not None:
        text += f" default {column['default']}"
    return text


def differences(migrated: dict[str, Any], declared: dict[str, Any]) -> list[str]:
    """What differs, one line each: ``table.column: migrated X, models Y``."""
    lines = []
    for table in sorted(set(migrated) | set(declared)):
        if table not in declared:
            lines.append(f"{table}: created by the migrations, declared by no model")
            continue
        if table not in migrated:
            lines.append(f"{table}: declared by a model, created by no migration")
            continue
        ours, theirs = migrated[table], declared[table]
        for column in sorted(set(ours["columns"]) | set(theirs["columns"])):
            got = ours["columns"].get(column)
            want = theirs["columns"].get(column)
            if got == want:
                continue
            if got is None or want is None:
                lines.append(f"{table}.{column}: migrated {_column(got)}, models {_column(want)}")
                continue
            for key in got:
                if got[key] != want[key]:
                    lines.append(
                        f"{table}.{column}: {key}: migrated {got[key]!r}, models {want[key]!r}"
                    )
        for what in ("indexes", "foreign keys"):
            for item in sorted(set(ours[what]) | set(theirs[what])):
                got_n, want_n = ours[what].count(item), theirs[what].count(item)
                if got_n != want_n:
                    lines.append(
                        f"{table}: {what[:-1] if what == 'foreign keys' else 'index'} "
                        f"{item}: migrated {got_n}, models {want_n}"
                    )
    return lines


# ------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("service", [api_service, workflow_service], ids=lambda s: s.__name__)
def test_a_migrated_database_has_the_schema_the_models_declare(make_database_url, service):
    migrations, models = service()
    # Given: one empty database migrated, another with the models' tables created
    migrated = open_database(make_database_url("schema_migrated"))
    declared = open_database(make_database_url("schema_models"))
    try:
        migrate(migrated, migrations)
        with declared.bind_ctx(models):
            declared.create_tables(models)
        # Then: both have the same tables, columns, indexes and foreign keys
        diff = differences(schema(migrated), schema(declared))
        assert not diff, "the migrated schema differs from the models':\n" + "\n".join(diff)
    finally:
        migrated.close()
        declared.close()


def test_every_model_of_every_part_is_compared():
    # The comparison sees each part's tables (a part whose models were not found
    # would compare nothing and pass).
    _, api_models = api_service()
    _, workflow_models = workflow_service()
    api_tables = {m._meta.table_name for m in api_models}
    workflow_tables = {m._meta.table_name for m in workflow_models}
    assert {"policy", "policy_review", "assessment", "evidence"} <= api_tables
    assert {
        "workflow",  # core
        "directory_users",  # users
        "delivery",  # notifications
        "approval_request",  # approvals
        "audit_entry",  # audit
        "stored_file",  # files (and the reports and exports stored there)
        "import_job",  # imports
    } <= workflow_tables
