"""The hash chain: appending, idempotency, concurrency, and verify spotting tampering."""

from __future__ import annotations

import threading

import pytest

from shared.db import is_postgres
from tests.audit.conftest import TENANT, chain_all
from workflow_service.audit import chain
from workflow_service.audit.models import AuditEntry, AuditHead, AuditPending
from workflow_service.audit.record import record
from workflow_service.db import database


def note(source: str, tenant: str = TENANT, **digest) -> None:
    record(
        tenant,
        source,
        "policy.updated",
        actor="alice",
        entity_type="policy",
        entity_id="p-1",
        digest=digest or {"n": source},
    )


def entries(tenant: str = TENANT) -> list[AuditEntry]:
    return list(AuditEntry.select().where(AuditEntry.tenant_id == tenant).order_by(AuditEntry.seq))


def test_entries_are_numbered_and_linked(workflow_db):
    for i in range(5):
        note(f"event:{i}")
    assert chain_all() == 5
    rows = entries()
    assert [e.seq for e in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == chain.GENESIS
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.prev_hash == before.hash
    assert [e.source_id for e in rows] == [f"event:{i}" for i in range(5)]
    assert AuditPending.select().count() == 0
    result = chain.verify(TENANT)
    assert result == {"intact": True, "entries": 5, "head": {"seq": 5, "hash": rows[-1].hash}}


def test_a_redelivered_source_makes_one_entry(workflow_db):
    # Given a source recorded twice before the builder runs, and once more after
    note("event:a")
    note("event:a")
    assert chain_all() == 1
    note("event:a")
    note("event:b")
    # When the builder runs again (and once more, as a redelivered builder would)
    assert chain_all() == 1
    assert chain_all() == 0
    # Then each source has one entry, and the chain is whole
    assert [e.source_id for e in entries()] == ["event:a", "event:b"]
    assert chain.verify(TENANT)["intact"] is True


def test_a_rolled_back_change_records_nothing(workflow_db):
    with pytest.raises(RuntimeError), database.atomic():
        note("event:rolled-back")
        raise RuntimeError("the change fails")
    assert chain_all() == 0
    assert entries() == []


def test_tenants_have_chains_of_their_own(workflow_db):
    note("event:1", tenant="acme")
    note("event:1", tenant="globex")
    note("event:2", tenant="globex")
    chain_all("acme")
    chain_all("globex")
    assert [e.seq for e in entries("acme")] == [1]
    assert [e.seq for e in entries("globex")] == [1, 2]
    assert chain.verify("acme")["entries"] == 1
    assert chain.verify("globex")["entries"] == 2
    assert chain.verify("initech") == {
        "intact": True,
        "entries": 0,
        "head": {"seq": 0, "hash": chain.GENESIS},
    }


def test_verify_names_an_edited_entry(workflow_db):
    for i in range(6):
        note(f"event:{i}")
    chain_all()
    # An edit straight in the database: entry 3's actor changed
    database.execute_sql(
        "UPDATE audit_entry SET actor = 'mallory' WHERE tenant_id = %s AND seq = 3"
        if is_postgres(database.obj)
        else "UPDATE audit_entry SET actor = 'mallory' WHERE tenant_id = ? AND seq = 3",
        (TENANT,),
    )
    result = chain.verify(TENANT, batch=2)  # small batches: the walk crosses them
    assert result["intact"] is False
    assert result["broken_at"] == 3
    assert "hash" in result["reason"]


def test_verify_names_an_edit_that_recomputed_the_hash(workflow_db):
    for i in range(4):
        note(f"event:{i}")
    chain_all()
    entry = AuditEntry.get((AuditEntry.tenant_id == TENANT) & (AuditEntry.seq == 2))
    fields = {name: getattr(entry, name) for name in chain.HASHED_FIELDS}
    fields["digest"] = {"n": "forged"}
    forged = chain.entry_hash(fields, entry.prev_hash)
    AuditEntry.update(digest={"n": "forged"}, hash=forged).where(
        AuditEntry.id == entry.id
    ).execute()
    result = chain.verify(TENANT)
    # Entry 2 checks out by itself now; entry 3 no longer links to it
    assert result["broken_at"] == 3
    assert "prev_hash" in result["reason"]


def test_verify_names_a_deleted_entry(workflow_db):
    for i in range(5):
        note(f"event:{i}")
    chain_all()
    database.execute_sql(
        "DELETE FROM audit_entry WHERE tenant_id = %s AND seq = 2"
        if is_postgres(database.obj)
        else "DELETE FROM audit_entry WHERE tenant_id = ? AND seq = 2",
        (TENANT,),
    )
    result = chain.verify(TENANT)
    assert result["intact"] is False
    assert result["broken_at"] == 2
    assert "missing" in result["reason"]


def test_verify_names_a_deleted_newest_entry(workflow_db):
    for i in range(3):
        note(f"event:{i}")
    chain_all()
    AuditEntry.delete().where((AuditEntry.tenant_id == TENANT) & (AuditEntry.seq == 3)).execute()
    result = chain.verify(TENANT)
    assert result == {
        "intact": False,
        "broken_at": 3,
        "reason": "entry 3 missing: the chain's head is at 3",
    }
    assert AuditHead.get_by_id(TENANT).seq == 3


def test_concurrent_writers_and_builders_never_fork_the_chain(workflow_db):
    # Given writers recording overlapping sources (redeliveries) while builders run
    writers, per_writer, builders = 6, 25, 4
    errors: list[BaseException] = []
    start = threading.Barrier(writers + builders)
    done = threading.Event()

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                # Two writers share each source: every source is "delivered" twice.
                with database.atomic():
                    note(f"event:{n // 2}:{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            database.close()

    def build() -> None:
        try:
            start.wait()
            while not done.is_set():
                chain.append(database, TENANT, batch=7)
            chain.append(database, TENANT, batch=7)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    building = [threading.Thread(target=build) for _ in range(builders)]
    for thread in threads + building:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done.set()
    for thread in building:
        thread.join(timeout=120)
    assert not errors, errors
    chain_all()
    # Then every source is in the chain once, numbered without gaps, and it verifies
    rows = entries()
    sources = [e.source_id for e in rows]
    assert len(sources) == len(set(sources)) == (writers // 2) * per_writer
    assert [e.seq for e in rows] == list(range(1, len(rows) + 1))
    assert chain.verify(TENANT)["intact"] is True
