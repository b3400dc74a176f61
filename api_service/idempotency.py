"""Idempotency keys of the api's writes: the first successful answer to a request sent
with an ``Idempotency-Key`` is stored in the transaction of the write, and a repeat of
the request by the same caller replays it instead of writing again.

A key belongs to a caller (``sub``) of a tenant. The request is fingerprinted (route,
entity, body, preconditions, caller): the same key with a different request is refused
(422), never answered with someone else's result. Concurrent repeats are settled by the
unique (tenant, caller, key) index: the second insert fails, its transaction (and the
write in it) rolls back, and it answers with the first one's stored answer.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from api_service.errors import IdempotencyKeyReused
from api_service.models import IdempotencyRecord
from shared.auth import Principal
from shared.sql import CompiledInsert

_INSERT_RECORD = CompiledInsert(IdempotencyRecord)


def fingerprint(request: dict[str, Any]) -> str:
    """A stable hash of a request (a JSON-able dict)."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def replay(principal: Principal, key: str, request_hash: str) -> tuple[int, dict[str, Any]] | None:
    """The stored (status, body) for ``key`` of the caller; None when the key is new.

    Raises :class:`IdempotencyKeyReused` when the key was used for another request."""
    record = IdempotencyRecord.get_or_none(
        (IdempotencyRecord.tenant == principal.tenant)
        & (IdempotencyRecord.caller == principal.sub)
        & (IdempotencyRecord.key == key)
    )
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was already used with a different request or by "
            "another caller; use a new key for a different request.",
        )
    return record.status, record.body


def record_params(
    principal: Principal,
    key: str,
    request_hash: str,
    status: int,
    body: dict[str, Any],
    now: datetime,
) -> list[Any]:
    """The INSERT parameters of the record of an answer (see :func:`record_statement`)."""
    return _INSERT_RECORD.params(
        {
            "tenant": principal.tenant,
            "caller": principal.sub,
            "key": key,
            "request_hash": request_hash,
            "status": status,
            "body": body,
            "created_at": now,
        }
    )


def store(db, principal: Principal, key: str, request_hash: str, status: int, body, now) -> None:
    """Store the answer in the current transaction."""
    _INSERT_RECORD.run(db, record_params(principal, key, request_hash, status, body, now))


def store_statement(db, params: list[Any]):
    """The INSERT of a record of :func:`record_params`, for a group commit."""
    return _INSERT_RECORD.statement(db, params)
