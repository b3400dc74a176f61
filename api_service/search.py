"""The policy list's text search (``q``), served by an index where one can serve it.

What ``q`` means does not depend on the index: a policy matches when its title or its
content, lower-cased by the database's ``lower()``, contains ``q`` lower-cased by Python,
as a plain substring (``%``, ``_``, ``\\`` and quotes are literal). That is the scan,
``strpos``/``instr`` of the needle, and it stays the last word on every row returned.

The index only narrows the rows the scan looks at:

- PostgreSQL: the condition is written as ``lower(title) LIKE '%needle%'`` (the needle
  escaped, so it means exactly the ``strpos`` test), which the planner can answer from
  the GIN trigram indexes of migration 8; it still chooses, by its statistics, between
  them and walking the tenant's newest policies (better for a common word). Without the
  indexes (pg_trgm refused) it reads the table, with the same results.
- SQLite: the FTS5 trigram table ``policy_search`` (migration 8) lists the policies that
  contain every trigram of the needle (with the tokenizer's own case folding, which
  folds at least what SQLite's ASCII-only ``lower()`` does, so no match is missed); those
  rows are then checked with the scan's predicate. SQLite's planner cannot tell a rare
  needle from a common one, so a first statement counts the candidates up to
  :data:`MOST_CANDIDATES`: few, and the search starts from them; more, and the tenant's
  newest policies are walked with the scan (a common word fills a page quickly).

Needles of one or two characters have no trigram, so they are always scanned, as is
everything when the index is missing (an SQLite built without FTS5, noticed once per
database and logged).
"""

from __future__ import annotations

import logging
import weakref

import peewee

from api_service.models import Policy
from shared.db import is_postgres

log = logging.getLogger(__name__)

#: The FTS5 table of migration 8 (SQLite).
SEARCH_TABLE = "policy_search"
#: A trigram is the shortest text an index can look up.
TRIGRAM = 3
#: Up to this many FTS candidates, an SQLite search starts from them (each costs a row
#: lookup and a check); past it, walking the tenant's newest policies finds a page sooner.
MOST_CANDIDATES = 1000

_fts_tables: weakref.WeakKeyDictionary[peewee.Database, bool] = weakref.WeakKeyDictionary()


def policies(
    db: peewee.Database, tenant: str, needle: str | None, *, use_index: bool = True
) -> peewee.ModelSelect[Policy]:
    """The tenant's policies not deleted and, when ``needle`` is given, matching it.

    ``needle`` is the search text as given (it is lower-cased here). ``use_index=False``
    gives the plain scan (the baseline the benchmark compares with)."""
    live = Policy.deleted_at.is_null()
    if not needle:
        return Policy.select().where((Policy.tenant == tenant) & live)
    needle = needle.lower()
    if not use_index or len(needle) < TRIGRAM:
        return Policy.select().where((Policy.tenant == tenant) & live & _scan(db, needle))
    if is_postgres(db):
        return Policy.select().where((Policy.tenant == tenant) & live & _like(needle))
    if "\x00" in needle or not _has_fts_table(db) or not _few_candidates(db, needle):
        return Policy.select().where((Policy.tenant == tenant) & live & _scan(db, needle))
    # The unary + keeps SQLite from walking a tenant index for the order: the rows come
    # from the candidates' rowids, then are sorted (there are few of them).
    unindexed_tenant = peewee.NodeList((peewee.SQL("+"), Policy.tenant), glue="")
    rowid = peewee.Column(Policy._meta.table, "rowid")
    return Policy.select().where(
        (unindexed_tenant == tenant) & live & rowid.in_(_candidates(needle)) & _scan(db, needle)
    )


def _scan(db: peewee.Database, needle: str) -> peewee.Expression:
    # A substring test without LIKE, so nothing in the needle is a pattern.
    find = peewee.fn.strpos if is_postgres(db) else peewee.fn.instr
    return (find(peewee.fn.lower(Policy.title), needle) > 0) | (
        find(peewee.fn.lower(Policy.content), needle) > 0
    )


def like_pattern(needle: str) -> str:
    """``%needle%`` for LIKE with its default escape (backslash): every character literal."""
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _like(needle: str) -> peewee.Expression:
    pattern = like_pattern(needle)
    # The expressions are those of the trigram indexes (lower(title), lower(content)).
    return (peewee.fn.lower(Policy.title) % pattern) | (peewee.fn.lower(Policy.content) % pattern)


def fts_query(needle: str) -> str:
    """An FTS5 query for the rows holding every trigram of ``needle`` (each quoted, so
    nothing in it is query syntax). With ``detail=none`` the index knows which trigrams a
    row has, not where; trigrams starting every third character cover the needle and
    cost a third of the lookups of all of them."""
    starts = [*range(0, len(needle) - TRIGRAM + 1, TRIGRAM), len(needle) - TRIGRAM]
    trigrams = dict.fromkeys(needle[i : i + TRIGRAM] for i in starts)
    return " AND ".join('"' + trigram.replace('"', '""') + '"' for trigram in trigrams)


def _candidates(needle: str) -> peewee.SelectQuery:
    # Named as itself (not t2) so query plans name it.
    table = peewee.Table(SEARCH_TABLE).alias(SEARCH_TABLE)
    # MATCH on the hidden column named after the table: the whole row (title, content).
    matches = peewee.Expression(peewee.Column(table, SEARCH_TABLE), "MATCH", fts_query(needle))
    return table.select(peewee.Column(table, "rowid")).where(matches)


def _few_candidates(db: peewee.Database, needle: str) -> bool:
    counted = _candidates(needle).limit(MOST_CANDIDATES + 1)
    count = peewee.Select([counted], [peewee.fn.COUNT(1)]).bind(db).scalar()
    return count <= MOST_CANDIDATES


def _has_fts_table(db: peewee.Database) -> bool:
    known = _fts_tables.get(db)
    if known is None:
        known = db.table_exists(SEARCH_TABLE)
        if not known:
            log.warning(
                "policy text search: no %s table (SQLite without FTS5?); searches read the table",
                SEARCH_TABLE,
            )
        _fts_tables[db] = known
    return known
