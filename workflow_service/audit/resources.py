"""``/audit`` (the log, filtered and paged), ``/audit/verify`` and ``/audit/packages``,
for the tenant's auditors and admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import falcon
from pydantic import BaseModel, Field

from shared.http import (
    ApiDocs,
    ApiError,
    Param,
    bad_parameter,
    decode_cursor,
    encode_cursor,
    parse_limit,
    read_json,
    route,
)
from workflow_service.audit import chain
from workflow_service.audit.httpaudit import OpsAudit
from workflow_service.audit.kick import AUDIT_QUEUE, PACKAGE_ACTOR, WebKick
from workflow_service.audit.models import AuditEntry
from workflow_service.audit.package import entry_dict, iso
from workflow_service.storage.jobs import accepted, job_message, submit

READ_ROLES = ("auditor",)  # admin holds every role
#: Longest period one package covers.
MAX_PACKAGE_DAYS = 366


def parse_time(value: Any, name: str) -> datetime:
    """An ISO 8601 date or time (``Z`` or an offset; naive means UTC) as naive UTC."""
    if not isinstance(value, str) or not value.strip():
        raise bad_parameter(name, f"'{name}' must be an ISO 8601 date or time.")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad_parameter(
            name, f"'{name}' is not an ISO 8601 date or time (e.g. 2026-11-01T00:00:00Z)."
        ) from None
    if not 1970 <= parsed.year <= 9000:
        raise bad_parameter(name, f"'{name}' is out of range.")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


class EntryOut(BaseModel):
    seq: int
    occurred_at: str
    actor: str
    action: str
    entity_type: str
    entity_id: str
    source_id: str
    digest: dict
    prev_hash: str
    hash: str


class EntryPage(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None


class VerifyOut(BaseModel):
    intact: bool
    entries: int | None = None
    head: dict | None = None
    broken_at: int | None = None
    reason: str | None = None


class PackageIn(BaseModel):
    from_: str = Field(alias="from", description="ISO date or time, inclusive")
    until: str = Field(description="ISO date or time, exclusive")


class JobRef(BaseModel):
    id: str
    href: str


class PackageAccepted(BaseModel):
    job: JobRef
    period: dict


FILTERS = ("entity_type", "entity_id", "actor", "action")


class AuditCollection:
    docs = {
        "GET": route(
            "The tenant's audit log, oldest first (keyset cursor on the sequence number)",
            response=EntryPage,
            params=(
                *(Param(name, description=f"only entries with this {name}") for name in FILTERS),
                Param("since", description="ISO time: entries that happened at or after it"),
                Param("until", description="ISO time: entries that happened before it"),
                Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 500}),
                Param("cursor", description="next_cursor of the previous page"),
            ),
            errors=(400,),
            roles=READ_ROLES,
        )
    }

    def on_get(self, req, resp):
        principal = req.context.principal
        query = AuditEntry.select().where(AuditEntry.tenant_id == principal.tenant)
        for name in FILTERS:
            value = req.get_param(name)
            if value:
                if len(value) > 200:
                    raise bad_parameter(name, f"'{name}' is longer than 200 characters.")
                query = query.where(getattr(AuditEntry, name) == value)
        if req.get_param("since"):
            query = query.where(
                AuditEntry.occurred_at >= parse_time(req.get_param("since"), "since")
            )
        if req.get_param("until"):
            query = query.where(
                AuditEntry.occurred_at < parse_time(req.get_param("until"), "until")
            )
        limit = parse_limit(req, default=100, maximum=500)
        raw = req.get_param("cursor")
        if raw:
            after = decode_cursor(raw, ("s",)).get("s")
            if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after < 2**62:
                raise bad_parameter("cursor", "'cursor' is not a cursor returned by this API.")
            query = query.where(AuditEntry.seq > after)
        rows = list(query.order_by(AuditEntry.seq).limit(limit))
        more = len(rows) == limit
        resp.media = {
            "items": [entry_dict(e) for e in rows],
            "next_cursor": encode_cursor({"s": rows[-1].seq}) if more else None,
        }


class AuditVerify:
    docs = {
        "GET": route(
            "Check the tenant's hash chain from its first entry: intact with its head, or "
            "the first sequence number where it breaks and why",
            response=VerifyOut,
            roles=READ_ROLES,
        )
    }

    def on_get(self, req, resp):
        principal = req.context.principal
        resp.media = chain.verify(principal.tenant)


class AuditPackages:
    docs = {
        "POST": route(
            "Build an audit package of a period (policies and versions, approvals, "
            "executions, the audit log, a manifest of SHA-256s) as a stored file; "
            "follow the job, whose result names the file",
            request=PackageIn,
            response=PackageAccepted,
            status=202,
            errors=(400, 422, 503),
            roles=READ_ROLES,
            # Its own checks name the period's problems (422 "Invalid package request").
            parses_body=False,
        )
    }

    def __init__(self, broker: Any, max_body_bytes: int):
        self.broker = broker
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp):
        principal = req.context.principal
        body = read_json(req, self.max_body_bytes)
        if not isinstance(body, dict):
            raise _invalid("The body must be a JSON object with 'from' and 'until'.")
        unknown = sorted(set(body) - {"from", "until"})
        if unknown:
            raise _invalid(f"Unknown fields: {', '.join(unknown)}; send 'from' and 'until'.")
        start = parse_time(body.get("from"), "from")
        until = parse_time(body.get("until"), "until")
        if until <= start:
            raise _invalid("'until' must be after 'from'.")
        if until - start > timedelta(days=MAX_PACKAGE_DAYS):
            raise _invalid(f"A package covers at most {MAX_PACKAGE_DAYS} days; split the period.")
        message = job_message(
            AUDIT_QUEUE,
            PACKAGE_ACTOR,
            (principal.tenant, start.isoformat(), until.isoformat(), principal.sub),
            tenant=principal.tenant,
        )
        accepted(resp, submit(self.broker, message))
        resp.media["period"] = {"from": iso(start), "until": iso(until)}


def _invalid(description: str) -> ApiError:
    return ApiError(falcon.HTTP_422, "Invalid package request", description)


def register(app: falcon.App, docs: ApiDocs, context: Any) -> None:
    """Route registrar of the admin web: /audit, /audit/verify, /audit/packages; and the
    middleware that kicks the chain builder after requests that recorded audit rows and
    records operators' job and queue controls."""
    deps, settings = context.deps, context.settings
    app.add_middleware(WebKick(deps.broker, deps.redis, settings.namespace))
    app.add_middleware(OpsAudit())
    docs.add_route(app, "/audit", AuditCollection())
    docs.add_route(app, "/audit/verify", AuditVerify())
    docs.add_route(app, "/audit/packages", AuditPackages(deps.broker, settings.max_body_bytes))
