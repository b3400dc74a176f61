"""Migration 8: an index that serves the policy list's text search (``q``).

``q`` finds policies whose lower-cased title or content contains the lower-cased text.
Without an index every search reads every policy of the tenant. This migration adds,
frozen here as SQL:

- SQLite: ``policy_search``, an FTS5 table with the trigram tokenizer over the title and
  content of ``policy`` (external content: it stores the index, not a second copy of the
  text), kept in step by triggers on insert, on a change of title or content and on
  delete, and filled from the existing rows. ``detail=none`` keeps it small (about a
  quarter of the size of ``detail=full``); it can then answer only "has all these
  trigrams", so :mod:`api_service.search` checks each candidate with the exact predicate.
  The rows are tied by ``rowid`` (``VACUUM`` keeps rowids; a test checks it): a later
  migration that rebuilds ``policy`` (copies it into a new table) must create the
  triggers again and rebuild the index
  (``INSERT INTO policy_search(policy_search) VALUES ('rebuild')``).
- PostgreSQL: the ``pg_trgm`` extension and a GIN trigram index on ``lower(title)`` and
  one on ``lower(content)``, which serve the escaped ``LIKE`` the search writes. Building
  them blocks writes to ``policy`` while it runs; on a large table create them
  beforehand with ``CREATE INDEX CONCURRENTLY`` (same names and definitions) and this
  migration keeps them.

Where the index cannot be had (SQLite built without FTS5 or older than 3.34;
``CREATE EXTENSION`` refused to a role that is not allowed to create it) the migration
logs a warning and still completes: the search then reads the table as before, with the
same results. Installing it later is the statements below, run by hand (on PostgreSQL,
``CREATE EXTENSION pg_trgm`` as a role allowed to, then the two ``CREATE INDEX``).
"""

from __future__ import annotations

import logging

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import is_postgres

NAME = "text search index of policies (FTS5 trigram on SQLite, pg_trgm GIN on PostgreSQL)"

log = logging.getLogger(__name__)

SQLITE_TABLE = (
    "CREATE VIRTUAL TABLE policy_search USING fts5("
    "title, content, content='policy', content_rowid='rowid', "
    "tokenize='trigram', detail='none', columnsize=0)"
)

SQLITE_TRIGGERS = (
    "CREATE TRIGGER policy_search_insert AFTER INSERT ON policy BEGIN "
    "INSERT INTO policy_search (rowid, title, content) "
    "VALUES (new.rowid, new.title, new.content); "
    "END",
    # Only a change of the searched text touches the index (a status change does not).
    "CREATE TRIGGER policy_search_update AFTER UPDATE OF title, content ON policy "
    "WHEN old.title IS NOT new.title OR old.content IS NOT new.content BEGIN "
    "INSERT INTO policy_search (policy_search, rowid, title, content) "
    "VALUES ('delete', old.rowid, old.title, old.content); "
    "INSERT INTO policy_search (rowid, title, content) "
    "VALUES (new.rowid, new.title, new.content); "
    "END",
    "CREATE TRIGGER policy_search_delete AFTER DELETE ON policy BEGIN "
    "INSERT INTO policy_search (policy_search, rowid, title, content) "
    "VALUES ('delete', old.rowid, old.title, old.content); "
    "END",
)

SQLITE_BACKFILL = "INSERT INTO policy_search (policy_search) VALUES ('rebuild')"

POSTGRES_EXTENSION = "CREATE EXTENSION IF NOT EXISTS pg_trgm"

POSTGRES_INDEXES = (
    "CREATE INDEX IF NOT EXISTS policy_title_trgm ON policy USING gin (lower(title) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS policy_content_trgm ON policy "
    "USING gin (lower(content) gin_trgm_ops)",
)


def apply(db: peewee.Database, migrator: SchemaMigrator) -> None:
    if is_postgres(db):
        _postgres(db)
    else:
        _sqlite(db)


def _postgres(db: peewee.Database) -> None:
    try:
        # A savepoint: a refused CREATE EXTENSION must not abort the migration's
        # transaction.
        with db.atomic():
            db.execute_sql(POSTGRES_EXTENSION)
            for statement in POSTGRES_INDEXES:
                db.execute_sql(statement)
    except peewee.DatabaseError as exc:
        log.warning(
            "policy text search: no trigram index (%s); searches read the table. "
            "Create the extension pg_trgm as a role allowed to, then the indexes "
            "policy_title_trgm and policy_content_trgm (see api_service.migration_0008).",
            str(exc).strip(),
        )


def _sqlite(db: peewee.Database) -> None:
    try:
        db.execute_sql(SQLITE_TABLE)
    except peewee.OperationalError as exc:
        # No fts5 module, or no trigram tokenizer (SQLite older than 3.34).
        log.warning("policy text search: no FTS5 trigram table (%s); searches read the table.", exc)
        return
    for statement in SQLITE_TRIGGERS:
        db.execute_sql(statement)
    db.execute_sql(SQLITE_BACKFILL)
