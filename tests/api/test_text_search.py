"""Text search (``q``) served by an index: the same answers as the scan it replaces.

The scan (``search.policies(..., use_index=False)``) is the meaning of ``q``: the
lower-cased title or content contains the lower-cased text. Every answer through the
index is compared with it, for text that is hostile to LIKE, to FTS5 query syntax and to
case folding, and after the writes that must keep the index in step.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import peewee
import pytest

from api_service import search
from api_service.migrations import MIGRATIONS
from api_service.models import Policy
from shared.db import is_postgres, migrate, open_database
from tests.api.helpers import ApiClient, unique_tenant

TEXTS = [
    ("Clean desk", "Lock screens; 100% of the time."),
    ("Encryption at rest", "Use AES-256 for every_disk."),
    ("Back\\slash policy", "Paths like C:\\temp\\x and 50%_off_"),
    ("O'Brien's rule", "He said \"hi\" and 'bye'; \"\" and ''"),
    ("Été à Paris", "ÉTÉ en capitales, été en minuscules"),
    ("Straße", "STRASSE und strasse; ß allein"),
    ("İstanbul office", "ıi İI"),
    ("Ωmega", "ωmega ΩMEGA"),
    ("日本語のポリシー", "本 日本 日本語"),
    ("Smile 🙂", "🙂🙂🙂 face"),
    ("Lines", "one\nline break\tand tab"),
    ("AND OR NOT NEAR", "{title}: colon * star ^ caret (paren) -minus +plus"),
    ("MiXeD CaSe WoRdS", "mixed case words in content"),
    ("Long", "x" * 150 + " needle-at-the-end"),
    ("Plain", "nothing special here"),
]

QUERIES = [
    # LIKE syntax
    "%",
    "_",
    "\\",
    "%%%",
    "100%",
    "50%_",
    "\\te",
    "every_disk",
    "y_d",
    # quotes and FTS5 syntax
    "'",
    '"',
    "''",
    '""',
    '"hi"',
    "o'brien",
    "AND",
    "and or",
    "near",
    "{title}: colon",
    "* star",
    "^ caret",
    "(paren)",
    "-minus",
    "+plus",
    "title:",
    # case and unicode
    "ENCRYPTION",
    "aes-256",
    "été",
    "ÉTÉ",
    "Été à",
    "straße",
    "STRASSE",
    "ß",
    "İstanbul",
    "istanbul",
    "ıi",
    "ωmega",
    "ΩMEGA",
    "Ω",
    "日本語",
    "本",
    "日本",
    "🙂",
    "🙂🙂",
    "🙂🙂🙂",
    "smile 🙂",
    # whitespace, short, long
    " ",
    "  ",
    "   ",
    "\t\t\t",
    "\n",
    "line\nbreak",
    "\tand",
    "a",
    "ab",
    "abc",
    "e r",
    "x" * 150,
    "x" * 3 + " needle",
    "needle-at-the-end",
    "no such text anywhere",
    "mixed case",
    "WORDS",
]


def _scan_ids(db, tenant: str, q: str) -> list[str]:
    query = search.policies(db, tenant, q, use_index=False)
    return [str(p.id) for p in query.order_by(Policy.created_at.desc(), Policy.id.desc())]


def _listed_ids(api: ApiClient, *, limit: int = 200, **params) -> list[str]:
    ids, cursor = [], None
    while True:
        page_params = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        resp = api.client.simulate_get(
            "/policies", params=page_params, headers=api.headers("viewer")
        )
        assert resp.status_code == 200, resp.text
        ids += [p["id"] for p in resp.json["items"]]
        cursor = resp.json["next_cursor"]
        if cursor is None:
            return ids


@pytest.fixture
def app_and_db(api_settings, make_app):
    app, deps = make_app(api_settings)
    return ApiClient(app, unique_tenant()), deps.db


def _seed(api: ApiClient) -> list[str]:
    return [api.create(title=title, content=content)["id"] for title, content in TEXTS]


def _assert_same_as_scan(api: ApiClient, db, queries=QUERIES) -> int:
    """Every query answers what the scan does; returns how many found something."""
    found = 0
    for q in queries:
        with db.connection_context():
            expected = _scan_ids(db, api.tenant, q)
        assert _listed_ids(api, q=q) == expected, f"q={q!r}"
        found += bool(expected)
    return found


def test_hostile_queries_answer_what_the_scan_answers(app_and_db):
    # Given: policies whose text is full of LIKE, FTS5 and case-folding traps
    api, db = app_and_db
    _seed(api)
    # Then: each query lists exactly the policies the scan finds, in the same order
    found = _assert_same_as_scan(api, db)
    assert found >= len(QUERIES) // 2  # the comparison is not between empty lists


def test_a_nul_character_fares_as_in_the_scan(app_and_db):
    api, db = app_and_db
    _seed(api)
    # (The API refuses a NUL in a parameter; the search is asked directly. PostgreSQL
    # text cannot hold one: both ways fail alike there.)
    with db.connection_context():
        for q in ["\x00", "a\x00b", "abc\x00"]:
            if is_postgres(db):
                with pytest.raises(ValueError, match="NUL"):
                    list(search.policies(db, api.tenant, q))
                with pytest.raises(ValueError, match="NUL"):
                    _scan_ids(db, api.tenant, q)
            else:
                query = search.policies(db, api.tenant, q)
                assert [str(p.id) for p in query] == _scan_ids(db, api.tenant, q)


def test_ascii_queries_mean_a_case_insensitive_substring_of_title_or_content(app_and_db):
    api, db = app_and_db
    ids = _seed(api)
    for q in ["clean", "AES-256", "100%", "50%_", "'bye'", "colon * star", "WORDS", "x" * 150]:
        expected = [
            i
            for i, (title, content) in reversed(list(zip(ids, TEXTS, strict=True)))
            if q.lower() in title.lower() or q.lower() in content.lower()
        ]
        assert _listed_ids(api, q=q) == expected, q


def test_pages_of_a_search_walk_every_match_once_newest_first(app_and_db):
    api, db = app_and_db
    ids = [api.create(title=f"Vendor review {i}", content="quarterly")["id"] for i in range(7)]
    api.create(title="Something else")
    assert _listed_ids(api, limit=3, q="vendor REVIEW") == list(reversed(ids))
    assert _listed_ids(api, limit=2, q="arterl") == list(reversed(ids))


def test_search_follows_updates_deletes_and_restores(app_and_db):
    api, db = app_and_db
    a = api.create(title="Firewall rules", content="deny by default")
    b = api.create(title="Badge access", content="visitors sign in")

    # When: a title and a content change
    resp = api.patch(a["id"], {"title": "Network filtering"}, version=1)
    assert resp.status_code == 200, resp.text
    resp = api.patch(b["id"], {"content": "escorted firewall visits"}, version=1)
    assert resp.status_code == 200, resp.text
    # Then: the old text no longer finds them, the new text does
    assert _listed_ids(api, q="firewall rules") == []
    assert _listed_ids(api, q="network filter") == [a["id"]]
    assert _listed_ids(api, q="visitors") == []
    assert _listed_ids(api, q="firewall") == [b["id"]]
    # A change that leaves the text alone leaves the search alone.
    assert api.transition(a["id"], "in_review").status_code == 200
    assert _listed_ids(api, q="network filter") == [a["id"]]

    # When: one is deleted (soft), then restored
    assert api.delete(a["id"]).status_code in (200, 204)
    assert _listed_ids(api, q="network filter") == []
    with db.connection_context():
        Policy.update(deleted_at=None).where(Policy.id == uuid.UUID(a["id"])).execute()
    assert _listed_ids(api, q="network filter") == [a["id"]]

    # When: a row is removed for good (the delete trigger on SQLite)
    with db.connection_context():
        Policy.delete().where(Policy.id == uuid.UUID(b["id"])).execute()
    assert _listed_ids(api, q="firewall") == []
    _assert_same_as_scan(api, db, ["firewall", "network", "filter", "escorted", "default"])
    if not is_postgres(db):
        with db.connection_context():
            # FTS5 compares its index with the policy table (raises on a difference).
            db.execute_sql(
                "INSERT INTO policy_search (policy_search, rank) VALUES ('integrity-check', 1)"
            )


def _bulk_policies(db, tenant: str, count: int, title, content) -> None:
    start = datetime(2030, 1, 1)
    rows = [
        {
            "id": uuid.uuid4(),
            "tenant": tenant,
            "title": title(i),
            "policy_type": "security",
            "content": content(i),
            "owner": "alice",
            "created_by": "alice",
            "updated_by": "alice",
            "created_at": start + timedelta(seconds=i),
            "updated_at": start + timedelta(seconds=i),
        }
        for i in range(count)
    ]
    with db.connection_context(), db.atomic():
        for chunk in peewee.chunked(rows, 500):
            Policy.insert_many(chunk).execute()


def test_a_word_with_many_candidates_answers_what_the_scan_answers(app_and_db):
    # Given: more policies holding the word than the index path takes on SQLite
    api, db = app_and_db
    count = search.MOST_CANDIDATES + 20
    _bulk_policies(
        db, api.tenant, count, lambda i: f"Retention {i}", lambda i: f"keep {i % 7} years"
    )
    # Then: the first pages are the scan's
    for q in ["retention", "keep 3 years", "retention 1017"]:
        with db.connection_context():
            expected = _scan_ids(db, api.tenant, q)[:120]
        assert _listed_ids(api, limit=60, q=q)[:120] == expected, q


def _plan(db, query: peewee.ModelSelect) -> str:
    sql, params = query.sql()
    if is_postgres(db):
        rows = db.execute_sql("EXPLAIN " + sql, params).fetchall()
        return "\n".join(row[0] for row in rows)
    rows = db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return "\n".join(str(row[-1]) for row in rows)


def test_the_index_serves_a_search_of_three_characters_or_more(app_and_db):
    # Given: enough policies that PostgreSQL's planner prefers an index to reading the
    # table (SQLite's plan is chosen by the search itself)
    api, db = app_and_db
    with db.connection_context():
        if is_postgres(db):
            db.execute_sql(
                "INSERT INTO policy (id, tenant, title, policy_type, content, owner, status, "
                "version, tags, created_by, created_at, updated_by, updated_at) "
                "SELECT md5(random()::text || i)::uuid, %s, 'Policy number ' || i, "
                "'security', 'common words for every policy ' || i, 'alice', 'draft', 1, "
                "'[]', 'alice', now(), 'alice', now() FROM generate_series(1, 5000) AS i",
                (api.tenant,),
            )
            # What autovacuum does after a bulk load: statistics, and the rows inserted
            # since the GIN indexes were built moved from their pending list.
            db.execute_sql("VACUUM ANALYZE policy")
    if not is_postgres(db):
        _bulk_policies(
            db,
            api.tenant,
            1000,
            lambda i: f"Policy number {i}",
            lambda i: f"common words for every policy {i}",
        )
    with db.connection_context():
        rare = search.policies(db, api.tenant, "Zebrafish")
        short = search.policies(db, api.tenant, "ze")
        plan = _plan(db, rare.order_by(Policy.created_at.desc(), Policy.id.desc()).limit(51))
        short_sql = short.sql()[0]
    # Then: the rare word is looked up in the index; two letters are scanned
    if is_postgres(db):
        assert "policy_title_trgm" in plan and "policy_content_trgm" in plan, plan
        assert "LIKE" not in short_sql.upper(), short_sql
    else:
        assert search.SEARCH_TABLE in plan, plan
        assert "USING INTEGER PRIMARY KEY" in plan, plan
        assert search.SEARCH_TABLE not in short_sql, short_sql


def test_a_database_migrated_before_the_index_gets_it_filled(make_database_url):
    # Given: a database at version 7 with policies in it
    db = open_database(make_database_url("text_search_upgrade"))
    tenant = unique_tenant()
    try:
        with db.bind_ctx([Policy]):
            with db.connection_context():
                migrate(db, [m for m in MIGRATIONS if m.version <= 7])
            _bulk_policies(
                db, tenant, 30, lambda i: f"Legacy policy {i}", lambda i: f"archived text {i}"
            )
            # When: it is migrated to the current version
            with db.connection_context():
                migrate(db, MIGRATIONS)
                # Then: the index holds the rows written before it existed
                found = search.policies(db, tenant, "legacy policy 2")
                assert sorted(p.title for p in found) == sorted(
                    ["Legacy policy 2"] + [f"Legacy policy {i}" for i in range(20, 30)]
                )
                assert "policy_search" in found.sql()[0] or is_postgres(db)
    finally:
        db.close()


def test_without_the_index_the_search_scans_with_the_same_answers(make_database_url):
    # Given: a database whose index is missing (an SQLite without FTS5; pg_trgm refused)
    db = open_database(make_database_url("text_search_no_index"))
    tenant = unique_tenant()
    try:
        with db.bind_ctx([Policy]):
            with db.connection_context():
                migrate(db, MIGRATIONS)
                if is_postgres(db):
                    db.execute_sql("DROP INDEX policy_title_trgm")
                    db.execute_sql("DROP INDEX policy_content_trgm")
                else:
                    for name in ("insert", "update", "delete"):
                        db.execute_sql(f"DROP TRIGGER policy_search_{name}")
                    db.execute_sql("DROP TABLE policy_search")
            _bulk_policies(db, tenant, 15, lambda i: f"Orphan {i}", lambda i: "text")
            with db.connection_context():
                # Then: the search still answers, by reading the table
                found = search.policies(db, tenant, "orphan 1")
                assert sorted(p.title for p in found) == sorted(
                    ["Orphan 1"] + [f"Orphan {i}" for i in range(10, 15)]
                )
                assert search.SEARCH_TABLE not in found.sql()[0]
                assert _scan_ids(db, tenant, "orphan 1") == [
                    str(p.id) for p in found.order_by(Policy.created_at.desc(), Policy.id.desc())
                ]
    finally:
        db.close()


def test_vacuum_keeps_the_index_tied_to_its_rows(make_database_url):
    # SQLite ties the FTS rows to policy rowids; VACUUM must not move them.
    db = open_database(make_database_url("text_search_vacuum"))
    tenant = unique_tenant()
    try:
        with db.bind_ctx([Policy]):
            with db.connection_context():
                migrate(db, MIGRATIONS)
            _bulk_policies(db, tenant, 60, lambda i: f"Kept {i}", lambda i: f"body {i}")
            with db.connection_context():
                # Given: gaps in the rowids, then a VACUUM
                Policy.delete().where(
                    Policy.title.in_([f"Kept {i}" for i in range(0, 60, 3)])
                ).execute()
                db.execute_sql("VACUUM")
                # Then: the search finds what the scan finds
                for q in ["kept 1", "kept 4", "body 5", "kept 3"]:
                    query = search.policies(db, tenant, q)
                    ordered = query.order_by(Policy.created_at.desc(), Policy.id.desc())
                    assert [str(p.id) for p in ordered] == _scan_ids(db, tenant, q), q
                if not is_postgres(db):
                    db.execute_sql(
                        "INSERT INTO policy_search (policy_search, rank) "
                        "VALUES ('integrity-check', 1)"
                    )
    finally:
        db.close()
