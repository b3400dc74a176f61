"""The hash chain: moving pending rows into it, and checking it.

Each tenant's entries are numbered 1, 2, 3...; an entry's ``hash`` is the SHA-256 of a
canonical JSON serialisation of its fields and ``prev_hash`` (the previous entry's
hash, 64 zeros for the first). Editing any field of an entry breaks its hash; deleting
one leaves a gap in the numbers (or, for the newest, a head that points past the end).

Appending runs under a lock of the tenant's head row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite transactions here begin IMMEDIATE, one writer at a time), and an
entry is unique on tenant + source id: however many builders run at once and however
often a source is redelivered, the chain neither forks nor repeats an entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

import peewee

from shared.db import is_postgres, utcnow
from workflow_service.audit.models import AuditEntry, AuditHead, AuditPending

GENESIS = "0" * 64
#: The fields an entry's hash covers, besides ``prev_hash``.
HASHED_FIELDS = (
    "tenant_id",
    "seq",
    "source_id",
    "occurred_at",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "digest",
)


def _time(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def canonical(fields: dict[str, Any], prev_hash: str) -> bytes:
    """The bytes an entry's hash is taken over: sorted keys, no spaces, ASCII."""
    body = {name: fields[name] for name in HASHED_FIELDS}
    body["seq"] = int(body["seq"])
    body["occurred_at"] = _time(body["occurred_at"])
    body["prev_hash"] = prev_hash
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(fields: dict[str, Any], prev_hash: str) -> str:
    return hashlib.sha256(canonical(fields, prev_hash)).hexdigest()


def _real(db: Any) -> peewee.Database:
    return getattr(db, "obj", db)


def _lock_head(db: Any, tenant_id: str) -> AuditHead:
    AuditHead.insert(tenant_id=tenant_id, seq=0, hash=GENESIS).on_conflict_ignore().execute()
    query = AuditHead.select().where(AuditHead.tenant_id == tenant_id)
    if is_postgres(_real(db)):
        query = query.for_update()
    return query.get()


def append(db: Any, tenant_id: str, batch: int = 500) -> int:
    """Move the tenant's pending rows into its chain; return how many entries it added."""
    added = 0
    while True:
        count, more = _append_batch(db, tenant_id, batch)
        added += count
        if not more:
            return added


def _append_batch(db: Any, tenant_id: str, batch: int) -> tuple[int, bool]:
    with db.atomic():
        head = _lock_head(db, tenant_id)
        rows = list(
            AuditPending.select()
            .where(AuditPending.tenant_id == tenant_id)
            .order_by(AuditPending.id)
            .limit(batch)
        )
        if not rows:
            return 0, False
        sources = [r.source_id for r in rows]
        seen = set(
            AuditEntry.select(AuditEntry.source_id)
            .where((AuditEntry.tenant_id == tenant_id) & AuditEntry.source_id.in_(sources))
            .tuples()
            .iterator()
        )
        seen = {s for (s,) in seen}
        seq, prev = head.seq, head.hash
        now = utcnow()
        entries = []
        for row in rows:
            if row.source_id in seen:
                continue  # redelivered after its first copy was chained
            seen.add(row.source_id)
            seq += 1
            fields = {
                "tenant_id": tenant_id,
                "seq": seq,
                "source_id": row.source_id,
                "occurred_at": row.occurred_at,
                "actor": row.actor,
                "action": row.action,
                "entity_type": row.entity_type,
                "entity_id": row.entity_id,
                "digest": row.digest,
            }
            digest = entry_hash(fields, prev)
            entries.append({**fields, "prev_hash": prev, "hash": digest, "recorded_at": now})
            prev = digest
        for chunk in peewee.chunked(entries, 50):
            AuditEntry.insert_many(chunk).execute()
        AuditPending.delete().where(AuditPending.id.in_([r.id for r in rows])).execute()
        if entries:
            (
                AuditHead.update(seq=seq, hash=prev, updated_at=now)
                .where(AuditHead.tenant_id == tenant_id)
                .execute()
            )
        return len(entries), len(rows) == batch


def pending_tenants(older_than: datetime | None = None, limit: int = 1000) -> list[str]:
    """Tenants with rows waiting to be chained (written before ``older_than``)."""
    query = AuditPending.select(AuditPending.tenant_id).distinct()
    if older_than is not None:
        query = query.where(AuditPending.created_at < older_than)
    # peewee's stubs type the rows of .tuples() as models.
    return [t for (t,) in cast(Iterable[tuple[str]], query.limit(limit).tuples())]


def head_of(tenant_id: str) -> dict[str, Any]:
    head = AuditHead.get_or_none(AuditHead.tenant_id == tenant_id)
    if head is None:
        return {"seq": 0, "hash": GENESIS}
    return {"seq": head.seq, "hash": head.hash}


def verify(tenant_id: str, batch: int = 1000, upto: int | None = None) -> dict[str, Any]:
    """Walk the tenant's chain in batches of ``batch`` (memory stays bounded).

    ``{"intact": true, "entries", "head"}``, or ``{"intact": false, "broken_at",
    "reason"}`` naming the first sequence number that does not check out. ``upto``
    stops at that sequence number (a package checks the chain as far as it reads).
    """
    columns = [getattr(AuditEntry, name) for name in (*HASHED_FIELDS, "prev_hash", "hash")]
    names = [*HASHED_FIELDS, "prev_hash", "hash"]
    expected, prev = 1, GENESIS

    def broken(seq: int, reason: str) -> dict[str, Any]:
        return {"intact": False, "broken_at": seq, "reason": reason}

    while True:
        query = (
            AuditEntry.select(*columns)
            .where((AuditEntry.tenant_id == tenant_id) & (AuditEntry.seq >= expected))
            .order_by(AuditEntry.seq)
            .limit(batch)
        )
        if upto is not None:
            query = query.where(AuditEntry.seq <= upto)
        count = 0
        for values in query.tuples().iterator():
            count += 1
            row = dict(zip(names, values, strict=True))
            seq = int(row["seq"])
            if seq != expected:
                return broken(expected, f"entry {expected} is missing (the next one is {seq})")
            if row["prev_hash"] != prev:
                return broken(seq, f"its prev_hash is not the hash of entry {seq - 1}")
            if entry_hash(row, prev) != row["hash"]:
                return broken(seq, "its hash does not match its contents (a field was changed)")
            prev = row["hash"]
            expected += 1
        if count < batch:
            break
    last = expected - 1
    head = head_of(tenant_id)
    limit = head["seq"] if upto is None else min(upto, head["seq"])
    if limit > last:
        gone = f"entry {limit}" if limit == last + 1 else f"entries {last + 1} to {limit}"
        return broken(last + 1, f"{gone} missing: the chain's head is at {limit}")
    if upto is None and head["seq"] == last and head["hash"] != prev:
        return broken(last, "its hash is not the one the head recorded")
    return {"intact": True, "entries": last, "head": {"seq": last, "hash": prev}}
