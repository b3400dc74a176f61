"""HTTP resources of the policy API: thin adapters between Falcon and PolicyService."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import falcon

from api_service.lifecycle import STATUSES
from api_service.policies import ListFilters, PolicyService, json_value, policy_body
from api_service.schemas import (
    PolicyCreate,
    PolicyDeletedOut,
    PolicyListOut,
    PolicyOut,
    PolicyRefusalListOut,
    PolicyUpdate,
    PolicyVersionListOut,
    PolicyWriteOut,
    TransitionRequest,
)
from shared.http import (
    Keyset,
    Param,
    bad_parameter,
    parse_choice,
    parse_limit,
    parse_uuid,
    route,
)

READ_ROLES = ("viewer", "editor", "approver", "auditor", "service")
WRITE_ROLES = ("editor",)
#: Who may create and edit policies: editors, and the workflow service for a named
#: person (a bulk import's, in ``X-Initiator``).
EDIT_ROLES = ("editor", "service")
#: Who may ask for a transition at all; the lifecycle decides per move.
TRANSITION_ROLES = ("editor", "approver", "service")

_EVENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_CAUSATION = 32
MAX_QUERY_LENGTH = 200

#: Lists newest first page by creation time, then id; version lists by version.
CREATED_KEYSET = Keyset(("t", datetime), ("i", uuid.UUID))
VERSION_KEYSET = Keyset(("v", int))

IF_MATCH = Param("If-Match", "header", "The ETag (version) the change is based on.")
ID_PARAM = Param("policy_id", "path", "Policy id", {"type": "string", "format": "uuid"})
ACTING_FOR = Param(
    "X-Initiator", "header", "The person the workflow service writes for (service only)"
)
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key", "header", "Replays the first answer for this key (keys are per caller)"
)


def if_match_version(req) -> int | None:
    """The version an If-Match header names; None without one (or with ``*``)."""
    raw = req.get_header("If-Match")
    if not raw or raw.strip() == "*":
        return None
    value = raw.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise bad_parameter(
            "If-Match",
            f"If-Match must be the ETag of the version the change is based on, such as "
            f"'\"3\"'; got {raw!r}.",
        )
    return int(value)


def causation_chain(req, principal) -> list[str]:
    """Event ids from ``X-Causation`` (sent by workflow steps that change a policy).

    Only the workflow service may send it: a chain past the depth limit stops every
    workflow, so anyone else could use it to keep their change from being reviewed.
    """
    raw = req.get_header("X-Causation")
    if not raw:
        return []
    if "service" not in principal.roles:
        raise falcon.HTTPForbidden(
            title="X-Causation not allowed",
            description="Only the workflow service may send X-Causation; leave it out.",
        )
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if len(ids) > MAX_CAUSATION or not all(_EVENT_ID.match(i) for i in ids):
        raise bad_parameter(
            "X-Causation",
            f"X-Causation must be up to {MAX_CAUSATION} comma-separated event ids.",
        )
    return ids


def initiator_of(req, principal) -> str | None:
    """Who started the chain a workflow's change belongs to, from ``X-Initiator``.

    Only the workflow service may send it (it names the person its change was made
    for, whom an approval must not let approve it).
    """
    raw = req.get_header("X-Initiator")
    if raw is None:
        return None
    if "service" not in principal.roles:
        raise falcon.HTTPForbidden(
            title="X-Initiator not allowed",
            description="Only the workflow service may send X-Initiator; leave it out.",
        )
    initiator = raw.strip()
    if not 1 <= len(initiator) <= 128 or not initiator.isprintable():
        raise bad_parameter("X-Initiator", "X-Initiator must be a user id of 1 to 128 characters.")
    return initiator


MAX_DECIDERS = 50


def deciders_of(req, principal) -> list[str]:
    """Who approved, from ``X-Decided-By``: the people a workflow's move to approved is
    made for (workflow service only; the api checks each like a person approving)."""
    raw = req.get_header("X-Decided-By")
    if raw is None:
        return []
    if "service" not in principal.roles:
        raise falcon.HTTPForbidden(
            title="X-Decided-By not allowed",
            description="Only the workflow service may send X-Decided-By; leave it out.",
        )
    people = list(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    if not 1 <= len(people) <= MAX_DECIDERS or not all(
        len(p) <= 128 and p.isprintable() for p in people
    ):
        raise bad_parameter(
            "X-Decided-By",
            f"X-Decided-By must be 1 to {MAX_DECIDERS} comma-separated user ids of up to "
            "128 characters.",
        )
    return people


def acting_for(req, principal) -> str | None:
    """The person the workflow service writes for (``X-Initiator``, required of it);
    None for a person's own write."""
    if "service" not in principal.roles:
        initiator_of(req, principal)  # 403 for anyone else sending it
        return None
    person = initiator_of(req, principal)
    if person is None:
        raise bad_parameter(
            "X-Initiator",
            "The workflow service creates and edits policies only for a named person: "
            "send their user id in X-Initiator.",
        )
    return person


def idempotency_key(req) -> str | None:
    raw = req.get_header("Idempotency-Key")
    if raw is None:
        return None
    key = raw.strip()
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise bad_parameter(
            "Idempotency-Key", "Idempotency-Key must be 1 to 200 printable characters."
        )
    return key


def _set_etag(resp, version: int) -> None:
    resp.etag = f'"{version}"'


class PolicyCollection:
    docs = {
        "POST": route(
            "Create a policy (status draft); Idempotency-Key replays the first answer "
            "and never creates a second policy (keys are per caller; another request "
            "with the same key: 422); the workflow service creates only for the person "
            "in X-Initiator (its creator); publishes policy.created",
            request=PolicyCreate,
            response=PolicyWriteOut,
            status=201,
            roles=EDIT_ROLES,
            errors=(400, 422),
            params=(IDEMPOTENCY_KEY, ACTING_FOR),
        ),
        "GET": route(
            "List policies, newest first",
            response=PolicyListOut,
            roles=READ_ROLES,
            errors=(400,),
            params=(
                Param("status", schema={"type": "string", "enum": list(STATUSES)}),
                Param("policy_type"),
                Param("owner"),
                Param("q", description="Text searched in title and content"),
                Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 200}),
                Param("cursor", description="next_cursor of the previous page"),
            ),
        ),
    }

    def __init__(self, service: PolicyService, max_body_bytes: int):
        self.service = service
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp):
        principal = req.context.principal
        person = acting_for(req, principal)
        key = idempotency_key(req)
        data = req.context.body
        if key:
            # Bulk imports repeat a create with the same key: never a second policy.
            status, body = self.service.create_idempotent(principal, data, key, acting_for=person)
            resp.status = status
            resp.location = f"/policies/{body['id']}"
            _set_etag(resp, body["version"])
            return body
        result = self.service.create(principal, data, acting_for=person)
        resp.location = f"/policies/{result.policy.id}"
        _set_etag(resp, result.policy.version)
        return result.body()

    def on_get(self, req, resp):
        principal = req.context.principal
        q = req.get_param("q") or None
        if q is not None and len(q) > MAX_QUERY_LENGTH:
            raise bad_parameter("q", f"'q' may be at most {MAX_QUERY_LENGTH} characters.")
        filters = ListFilters(
            status=parse_choice(req, "status", STATUSES),
            policy_type=req.get_param("policy_type") or None,
            owner=req.get_param("owner") or None,
            q=q,
        )
        limit = parse_limit(req, default=50, maximum=200)
        after = CREATED_KEYSET.after(req)
        rows, last = self.service.search(principal, filters, after=after, limit=limit)
        next_cursor = CREATED_KEYSET.encode(*last) if last is not None else None
        return {"items": [policy_body(p) for p in rows], "next_cursor": next_cursor}


class PolicyItem:
    docs = {
        "GET": route(
            "Get a policy (ETag = version)",
            response=PolicyOut,
            roles=READ_ROLES,
            errors=(400, 404),
            params=(ID_PARAM,),
        ),
        "PATCH": route(
            "Change fields of a policy; needs If-Match or 'version' (stale: 412); a "
            "policy in review is not edited (409: withdraw it to draft first); "
            "Idempotency-Key replays the first answer; the workflow service edits only "
            "for the person in X-Initiator; publishes policy.updated",
            request=PolicyUpdate,
            response=PolicyWriteOut,
            roles=EDIT_ROLES,
            errors=(400, 404, 409, 412, 422, 428),
            params=(ID_PARAM, IF_MATCH, IDEMPOTENCY_KEY, ACTING_FOR),
        ),
        "DELETE": route(
            "Delete a policy (soft); publishes policy.deleted",
            response=PolicyDeletedOut,
            roles=WRITE_ROLES,
            errors=(400, 404, 409, 412),
            params=(ID_PARAM, IF_MATCH),
        ),
    }

    def __init__(self, service: PolicyService, max_body_bytes: int):
        self.service = service
        self.max_body_bytes = max_body_bytes

    def on_get(self, req, resp, policy_id):
        principal = req.context.principal
        policy = self.service.get(principal, parse_uuid(policy_id, "policy_id"))
        _set_etag(resp, policy.version)
        return policy_body(policy)

    def on_patch(self, req, resp, policy_id):
        principal = req.context.principal
        person = acting_for(req, principal)
        pid = parse_uuid(policy_id, "policy_id")
        if_match = if_match_version(req)
        key = idempotency_key(req)
        data = req.context.body
        if key:
            status, body = self.service.update_idempotent(
                principal, pid, data, if_match=if_match, idempotency_key=key, acting_for=person
            )
            resp.status = status
            _set_etag(resp, body["version"])
            return body
        result = self.service.update(principal, pid, data, if_match=if_match, acting_for=person)
        _set_etag(resp, result.policy.version)
        return result.body()

    def on_delete(self, req, resp, policy_id):
        principal = req.context.principal
        pid = parse_uuid(policy_id, "policy_id")
        result = self.service.delete(principal, pid, if_match=if_match_version(req))
        return {"id": str(pid), "deleted": True, "jobs": result.body()["jobs"]}


class PolicyTransitions:
    docs = {
        "POST": route(
            "Move a policy through its lifecycle (forbidden move: 409 with the allowed "
            "targets); Idempotency-Key replays the first answer (keys are per caller); "
            "in_review -> approved is refused (403) to the policy's creator, owner and "
            "submitter, and to every person when the tenant requires the approval "
            "workflow; refusals are recorded; publishes policy.status_changed",
            request=TransitionRequest,
            response=PolicyWriteOut,
            roles=TRANSITION_ROLES,
            errors=(403, 404, 409, 412),
            params=(
                ID_PARAM,
                IF_MATCH,
                Param("Idempotency-Key", "header", "Replays the first answer for this key"),
                Param("X-Causation", "header", "Comma-separated ids of the causing events"),
                Param("X-Initiator", "header", "Who started the chain (workflow service only)"),
                Param(
                    "X-Decided-By",
                    "header",
                    "Who approved, comma-separated (workflow service only; needed for its "
                    "moves to approved)",
                ),
            ),
        ),
    }

    def __init__(self, service: PolicyService, max_body_bytes: int):
        self.service = service
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp, policy_id):
        principal = req.context.principal
        pid = parse_uuid(policy_id, "policy_id")
        if_match = if_match_version(req)
        causation = causation_chain(req, principal)
        initiator = initiator_of(req, principal)
        deciders = deciders_of(req, principal)
        key = idempotency_key(req)
        data = req.context.body
        status, body = self.service.transition(
            principal,
            pid,
            data,
            if_match=if_match,
            causation=causation,
            initiator=initiator,
            deciders=deciders,
            idempotency_key=key,
        )
        resp.status = status
        _set_etag(resp, body["version"])
        return body


class PolicyVersions:
    docs = {
        "GET": route(
            "The policy's version snapshots, oldest first",
            response=PolicyVersionListOut,
            roles=READ_ROLES,
            errors=(400, 404),
            params=(
                ID_PARAM,
                Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 200}),
                Param("cursor", description="next_cursor of the previous page"),
            ),
        ),
    }

    def __init__(self, service: PolicyService):
        self.service = service

    def on_get(self, req, resp, policy_id):
        principal = req.context.principal
        policy = parse_uuid(policy_id, "policy_id")
        limit = parse_limit(req, default=50, maximum=200)
        (after,) = VERSION_KEYSET.after(req) or (None,)
        versions = self.service.versions(principal, policy, after=after, limit=limit + 1)
        more, versions = len(versions) > limit, versions[:limit]
        return {
            "next_cursor": VERSION_KEYSET.encode(versions[-1].version) if more else None,
            "items": [
                {
                    "version": v.version,
                    "change": v.change,
                    "changed_by": v.changed_by,
                    "via": v.via,
                    "changed_at": json_value(v.changed_at),
                    "snapshot": v.snapshot,
                }
                for v in versions
            ],
        }


class PolicyRefusals:
    docs = {
        "GET": route(
            "Refused moves of the policy (who, for whom, when, why), newest first",
            response=PolicyRefusalListOut,
            roles=READ_ROLES,
            errors=(400, 404),
            params=(ID_PARAM,),
        ),
    }

    def __init__(self, service: PolicyService):
        self.service = service

    def on_get(self, req, resp, policy_id):
        principal = req.context.principal
        refusals = self.service.refusals(principal, parse_uuid(policy_id, "policy_id"))
        return {
            "items": [
                {
                    "from_status": r.from_status,
                    "to_status": r.to_status,
                    "refused_by": r.refused_by,
                    "on_behalf_of": r.on_behalf_of.split(",") if r.on_behalf_of else [],
                    "reason": r.reason,
                    "refused_at": json_value(r.refused_at),
                }
                for r in refusals
            ]
        }
