"""HTTP resources of assessments and evidence (and the assignment of every entity
type): one set of thin adapters, described per entity type by an :class:`EntityApi`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import falcon
from pydantic import BaseModel, Field, StrictInt, StringConstraints, create_model

from api_service.entities import EntityKind, EntityService
from api_service.evidence_files import ALLOWED_TYPES, EvidenceFiles
from api_service.policies import json_value
from api_service.resources import (
    CREATED_KEYSET,
    IF_MATCH,
    READ_ROLES,
    VERSION_KEYSET,
    causation_chain,
    deciders_of,
    idempotency_key,
    if_match_version,
    initiator_of,
)
from api_service.schemas import Comment, JobLink, PolicyVersionOut
from shared.auth import CLAIM_ID
from shared.http import (
    Param,
    StrictModel,
    bad_parameter,
    parse_limit,
    parse_uuid,
    route,
)

WRITE_ROLES = ("editor",)
#: Who may ask for a transition at all; the kind decides per move.
TRANSITION_ROLES = ("editor", "approver", "service")
#: Who may hand an entity to someone (a workflow's assign step is the service).
ASSIGN_ROLES = ("editor", "service")

IDEMPOTENCY = Param(
    "Idempotency-Key", "header", "Replays the first answer for this key (keys are per caller)"
)
CAUSATION = Param("X-Causation", "header", "Comma-separated ids of the causing events")
INITIATOR = Param("X-Initiator", "header", "Who started the chain (workflow service only)")


#: A person's user id (a token's ``sub``): an assignment names one person, never a role.
Assignee = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=rf"^{CLAIM_ID.pattern}$")
]


class AssignmentRequest(StrictModel):
    #: The user id of the new owner (policy owner, assessor, evidence collector).
    assignee: Assignee
    comment: Comment | None = None
    #: Optional: refuse the assignment if the entity changed since this version.
    version: StrictInt | None = Field(default=None, ge=1)


class DeletedOut(BaseModel):
    id: str
    deleted: bool
    jobs: list[JobLink]


class VersionListOut(BaseModel):
    next_cursor: str | None
    items: list[PolicyVersionOut]


class RefusalOut(BaseModel):
    from_status: str
    to_status: str
    refused_by: str
    on_behalf_of: list[str]
    reason: str
    refused_at: datetime


class RefusalListOut(BaseModel):
    items: list[RefusalOut]


@dataclass(frozen=True)
class EntityApi:
    """One entity type's HTTP description: its kind and request and answer models."""

    kind: EntityKind
    create: type[StrictModel]
    update: type[StrictModel]
    out: type[BaseModel]
    #: (request body, caller) -> the kind's own fields of a new row.
    create_values: Callable[[Any, str], dict[str, Any]]
    #: PATCH body -> the fields it changes.
    update_values: Callable[[Any], dict[str, Any]]
    #: (name, JSON schema, description) of the list's filters.
    filter_docs: Sequence[tuple[str, dict[str, Any], str]]
    #: A request's list conditions (400 on a bad parameter).
    filters: Callable[[Any], list[Any]]

    @property
    def id_name(self) -> str:
        return f"{self.kind.name}_id"

    @property
    def id_param(self) -> Param:
        return Param(
            self.id_name, "path", f"{self.kind.title} id", {"type": "string", "format": "uuid"}
        )

    def model(self, suffix: str, **fields: Any) -> type[BaseModel]:
        return create_model(f"{self.kind.title}{suffix}", **fields)  # type: ignore[call-overload]


def _etag(resp, version: int) -> None:
    resp.etag = f'"{version}"'


def _answer(resp, status: int, body: dict[str, Any]) -> dict[str, Any]:
    """``body``, answered with ``status`` and the ETag of the version it holds."""
    resp.status = status
    if "version" in body:
        _etag(resp, body["version"])
    return body


class Collection:
    def __init__(self, api: EntityApi, service: EntityService, max_body_bytes: int):
        self.api = api
        self.service = service
        self.max_body_bytes = max_body_bytes
        kind = api.kind
        out = api.out
        self.write_out = api.model("WriteOut", __base__=out, jobs=(list[JobLink], ...))
        self.docs = {
            "POST": route(
                f"Create {kind.name} (status {kind.initial_status}); Idempotency-Key replays "
                f"the first answer and never creates twice; publishes {kind.name}.created",
                request=api.create,
                response=self.write_out,
                status=201,
                roles=WRITE_ROLES,
                errors=(422,),
                params=(IDEMPOTENCY,),
            ),
            "GET": route(
                f"List {kind.collection}, newest first",
                response=api.model(
                    "ListOut",
                    items=(list[out], ...),  # type: ignore[valid-type]  # a model made at run time
                    next_cursor=(str | None, ...),
                ),
                roles=READ_ROLES,
                errors=(400,),
                params=(
                    *(Param(n, schema=s, description=d) for n, s, d in api.filter_docs),
                    Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 200}),
                    Param("cursor", description="next_cursor of the previous page"),
                ),
            ),
        }

    def on_post(self, req, resp):
        principal = req.context.principal
        key = idempotency_key(req)
        data = req.context.body
        values = self.api.create_values(data, principal.sub)
        status, body = self.service.create(principal, values, idempotency_key=key)
        resp.location = f"/{self.api.kind.collection}/{body['id']}"
        return _answer(resp, status, body)

    def on_get(self, req, resp):
        principal = req.context.principal
        conditions = self.api.filters(req)
        limit = parse_limit(req, default=50, maximum=200)
        after = CREATED_KEYSET.after(req)
        rows, last = self.service.search(principal, conditions, after=after, limit=limit)
        next_cursor = CREATED_KEYSET.encode(*last) if last is not None else None
        return {"items": [self.api.kind.body(r) for r in rows], "next_cursor": next_cursor}


class Item:
    def __init__(self, api: EntityApi, service: EntityService, max_body_bytes: int):
        self.api = api
        self.service = service
        self.max_body_bytes = max_body_bytes
        kind = api.kind
        frozen = ", ".join(kind.frozen) or "none"
        self.docs = {
            "GET": route(
                f"Get {kind.name} (ETag = version)",
                response=api.out,
                roles=READ_ROLES,
                errors=(400, 404),
                params=(api.id_param,),
            ),
            "PATCH": route(
                f"Change fields of {kind.name}; needs If-Match or 'version' (stale: 412); "
                f"content in status {frozen} does not change (409); Idempotency-Key "
                f"replays the first answer; publishes {kind.name}.updated",
                request=api.update,
                response=api.model("PatchOut", __base__=api.out, jobs=(list[JobLink], ...)),
                roles=WRITE_ROLES,
                errors=(404, 409, 412, 422, 428),
                params=(api.id_param, IF_MATCH, IDEMPOTENCY),
            ),
            "DELETE": route(
                f"Delete {kind.name} (soft); publishes {kind.name}.deleted",
                response=DeletedOut,
                roles=WRITE_ROLES,
                errors=(400, 404, 409, 412),
                params=(api.id_param, IF_MATCH),
            ),
        }

    def _id(self, raw: str) -> uuid.UUID:
        return parse_uuid(raw, self.api.id_name)

    def on_get(self, req, resp, **params):
        principal = req.context.principal
        row = self.service.get(principal, self._id(params[self.api.id_name]))
        _etag(resp, row.version)
        return self.api.kind.body(row)

    def on_patch(self, req, resp, **params):
        principal = req.context.principal
        entity_id = self._id(params[self.api.id_name])
        if_match = if_match_version(req)
        key = idempotency_key(req)
        data = req.context.body
        status, body = self.service.update(
            principal,
            entity_id,
            self.api.update_values(data),
            body_version=getattr(data, "version", None),
            if_match=if_match,
            idempotency_key=key,
        )
        return _answer(resp, status, body)

    def on_delete(self, req, resp, **params):
        principal = req.context.principal
        entity_id = self._id(params[self.api.id_name])
        status, body = self.service.delete(principal, entity_id, if_match=if_match_version(req))
        return _answer(resp, status, body)


class Transitions:
    def __init__(self, api: EntityApi, service: EntityService, max_body_bytes: int):
        self.api = api
        self.service = service
        self.max_body_bytes = max_body_bytes
        kind = api.kind
        statuses = tuple(kind.lifecycle.statuses)
        self.request = create_model(
            f"{kind.title}TransitionRequest",
            __base__=StrictModel,
            # A Literal of the kind's statuses, made at run time.
            to=(Literal[statuses], ...),  # type: ignore[valid-type, arg-type]
            comment=(Comment | None, None),
            version=(StrictInt | None, Field(default=None, ge=1)),
        )
        decisions = ", ".join(sorted(kind.decisions)) or "none"
        system = ", ".join(sorted(kind.system_only))
        self.docs = {
            "POST": route(
                f"Move {kind.name} through its lifecycle (forbidden move: 409 with the "
                f"allowed targets); moves to {decisions} are decisions (approver; refused "
                "(403) to whoever created, owns or submitted it; the workflow service names "
                "the deciders in X-Decided-By) and refusals are recorded"
                + (f"; {system} is made by the system only (403)" if system else "")
                + f"; Idempotency-Key replays the first answer; publishes "
                f"{kind.name}.status_changed",
                request=self.request,
                response=api.model("TransitionOut", __base__=api.out, jobs=(list[JobLink], ...)),
                roles=TRANSITION_ROLES,
                errors=(403, 404, 409, 412, 422),
                params=(
                    api.id_param,
                    IF_MATCH,
                    IDEMPOTENCY,
                    CAUSATION,
                    INITIATOR,
                    Param("X-Decided-By", "header", "Who decided (workflow service only)"),
                ),
            ),
        }

    def on_post(self, req, resp, **params):
        principal = req.context.principal
        entity_id = parse_uuid(params[self.api.id_name], self.api.id_name)
        if_match = if_match_version(req)
        causation = causation_chain(req, principal)
        initiator = initiator_of(req, principal)
        deciders = deciders_of(req, principal)
        key = idempotency_key(req)
        data = req.context.body
        status, body = self.service.transition(
            principal,
            entity_id,
            data.to,  # type: ignore[attr-defined]
            comment=data.comment,  # type: ignore[attr-defined]
            body_version=data.version,  # type: ignore[attr-defined]
            if_match=if_match,
            causation=causation,
            idempotency_key=key,
            initiator=initiator,
            deciders=deciders,
        )
        return _answer(resp, status, body)


class Assignment:
    def __init__(
        self,
        kind: EntityKind,
        service: EntityService,
        max_body_bytes: int,
        id_name: str,
        out: type[BaseModel],
    ):
        self.kind = kind
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.id_name = id_name
        id_param = Param(id_name, "path", f"{kind.title} id", {"type": "string", "format": "uuid"})
        self.docs = {
            "POST": route(
                f"Assign {kind.name} to a person (a user id; sets {kind.assignee_field}) in "
                "any status but deleted and awaiting a decision (409); bumps the version; "
                "Idempotency-Key replays the first answer; "
                f"publishes {kind.name}.assigned with assignee and previous_assignee",
                request=AssignmentRequest,
                response=create_model(
                    f"{kind.title}AssignmentOut", __base__=out, jobs=(list[JobLink], ...)
                ),
                roles=ASSIGN_ROLES,
                errors=(403, 404, 409, 412, 422),
                params=(id_param, IF_MATCH, IDEMPOTENCY, CAUSATION, INITIATOR),
            ),
        }

    def on_post(self, req, resp, **params):
        principal = req.context.principal
        entity_id = parse_uuid(params[self.id_name], self.id_name)
        if_match = if_match_version(req)
        causation = causation_chain(req, principal)
        initiator = initiator_of(req, principal)
        key = idempotency_key(req)
        data = req.context.body
        version = data.version if data.version is not None else if_match
        if data.version is not None and if_match is not None and data.version != if_match:
            raise bad_parameter("If-Match", "If-Match and 'version' name different versions.")
        status, body = self.service.assign(
            principal,
            entity_id,
            data.assignee,
            comment=data.comment,
            if_match=version,
            causation=causation,
            idempotency_key=key,
            initiator=initiator,
        )
        return _answer(resp, status, body)


def _paged_versions(req, service: EntityService, principal, entity_id) -> dict[str, Any]:
    limit = parse_limit(req, default=50, maximum=200)
    (after,) = VERSION_KEYSET.after(req) or (None,)
    versions = service.versions(principal, entity_id, after=after, limit=limit + 1)
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


class Versions:
    def __init__(self, api: EntityApi, service: EntityService):
        self.api = api
        self.service = service
        self.docs = {
            "GET": route(
                f"The {api.kind.name}'s version snapshots, oldest first",
                response=VersionListOut,
                roles=READ_ROLES,
                errors=(400, 404),
                params=(
                    api.id_param,
                    Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 200}),
                    Param("cursor", description="next_cursor of the previous page"),
                ),
            ),
        }

    def on_get(self, req, resp, **params):
        principal = req.context.principal
        entity_id = parse_uuid(params[self.api.id_name], self.api.id_name)
        return _paged_versions(req, self.service, principal, entity_id)


class Refusals:
    def __init__(self, api: EntityApi, service: EntityService):
        self.api = api
        self.service = service
        self.docs = {
            "GET": route(
                f"Refused moves of the {api.kind.name} (who, for whom, when, why), newest first",
                response=RefusalListOut,
                roles=READ_ROLES,
                errors=(400, 404),
                params=(api.id_param,),
            ),
        }

    def on_get(self, req, resp, **params):
        principal = req.context.principal
        entity_id = parse_uuid(params[self.api.id_name], self.api.id_name)
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
                for r in self.service.refusals(principal, entity_id)
            ]
        }


class EvidenceFile:
    def __init__(self, files: EvidenceFiles, out: type[BaseModel]):
        self.files = files
        id_param = Param("evidence_id", "path", "Evidence id", {"type": "string", "format": "uuid"})
        types = ", ".join(sorted(ALLOWED_TYPES))
        self.docs = {
            "PUT": route(
                "Store the evidence's file: the raw body with its Content-Type (one of "
                f"{types}; others 415), at most EVIDENCE_MAX_BYTES (413); needs If-Match "
                "(428/412); not once the evidence is submitted, accepted or expired (409); "
                "records its SHA-256, bumps the version, publishes evidence.updated",
                response=create_model("EvidenceFileOut", __base__=out, jobs=(list[JobLink], ...)),
                roles=WRITE_ROLES,
                errors=(400, 404, 409, 412, 413, 415, 428),
                params=(
                    id_param,
                    IF_MATCH,
                    Param("file_name", description="The file's name (shown on download)"),
                ),
            ),
            "GET": route(
                "Download the evidence's file (as an attachment, with its content type)",
                roles=READ_ROLES,
                errors=(400, 404),
                params=(id_param,),
            ),
        }

    def on_put(self, req, resp, evidence_id):
        principal = req.context.principal
        entity_id = parse_uuid(evidence_id, "evidence_id")
        # Another tenant's evidence is a 404 whatever is sent.
        self.files.evidence.get(principal, entity_id)
        content_type = (req.content_type or "").split(";")[0].strip().lower()
        if content_type not in ALLOWED_TYPES:
            raise falcon.HTTPUnsupportedMediaType(
                title="Unsupported file type",
                description=f"An evidence file may be one of {', '.join(sorted(ALLOWED_TYPES))}"
                f"; got {content_type or 'no Content-Type'}.",
            )
        length = req.content_length
        if length is not None and length > self.files.max_bytes:
            raise falcon.HTTPContentTooLarge(
                title="File too large",
                description=f"The file is {length} bytes; the limit is {self.files.max_bytes} "
                "bytes (EVIDENCE_MAX_BYTES).",
            )
        file_name = req.get_param("file_name")
        if file_name is not None and len(file_name) > 255:
            raise bad_parameter("file_name", "'file_name' may be at most 255 characters.")
        body = self.files.attach(
            principal,
            entity_id,
            if_match=if_match_version(req),
            content_type=content_type,
            file_name=file_name,
            stream=req.bounded_stream,
        )
        return _answer(resp, 200, body)

    def on_get(self, req, resp, evidence_id):
        principal = req.context.principal
        row, stream = self.files.open(principal, parse_uuid(evidence_id, "evidence_id"))
        resp.content_type = row.content_type
        resp.set_header("Content-Disposition", f'attachment; filename="{row.file_name}"')
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Content-Length", str(row.size))
        resp.stream = stream


def add_entity_routes(
    app: falcon.App,
    docs: Any,
    apis: Sequence[tuple[EntityApi, EntityService]],
    max_body_bytes: int,
) -> None:
    """The routes of each entity type of ``apis``."""
    for api, service in apis:
        base = f"/{api.kind.collection}"
        item = f"{base}/{{{api.id_name}}}"
        docs.add_route(app, base, Collection(api, service, max_body_bytes))
        docs.add_route(app, item, Item(api, service, max_body_bytes))
        docs.add_route(app, f"{item}/transitions", Transitions(api, service, max_body_bytes))
        docs.add_route(app, f"{item}/versions", Versions(api, service))
        docs.add_route(app, f"{item}/refusals", Refusals(api, service))
        docs.add_route(
            app,
            f"{item}/assignment",
            Assignment(api.kind, service, max_body_bytes, api.id_name, api.out),
        )
