"""``/approvals``: what awaits my decision, one approval, and deciding it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

import falcon
from pydantic import BaseModel, Field

from shared.auth import ROLES
from shared.http import (
    ApiDocs,
    Param,
    StrictModel,
    parse_body,
    parse_choice,
    parse_limit,
    read_json,
    route,
)
from workflow_service import ending
from workflow_service.approvals import service
from workflow_service.approvals.models import ApprovalRequest, ApprovalSlot, ApprovalStatus
from workflow_service.models import Execution, ExecutionStatus
from workflow_service.notifications import delivery
from workflow_service.web.common import after_cursor, next_cursor, page_cursor, uuid_param

log = logging.getLogger(__name__)

#: (execution id, tag) -> job id of the run message, or None when it was not waiting.
Resume = Callable[[str, str], "str | None"]
#: (tenant, entity type, entity id) -> the entity as the api shows it now, or None.
EntityLookup = Callable[[str, str, str], "dict | None"]
#: Waits for an execution to reach ``waiting_approval`` after its step committed.
RESUME_BACKOFF_S = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)


class DecisionIn(StrictModel):
    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=4000)
    #: The entity version the decider reviewed (the approval's ``entity_version``);
    #: optional, and when given another version is refused (409).
    version: int | None = Field(default=None, ge=1, strict=True)


class DecisionOut(BaseModel):
    id: str
    status: str
    stage: int
    outcome: str | None
    my_decision: str | None
    job: dict | None


_REFUSAL_TITLES = {
    service.NotAnApprover.reason: "Not an approver",
    service.SelfApprovalRefused.reason: "Self-approval refused",
    service.ApproverRoleRequired.reason: "Approver role required",
    service.DeciderNotInDirectory.reason: "Approver not in the directory",
}


class EntityGone(Exception):
    """The api says the approval's entity does not exist (any more)."""


def _version(entity: dict | None) -> int | None:
    version = (entity or {}).get("version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


ID = Param("approval_id", "path", "Approval id", {"type": "string", "format": "uuid"})


def _get(tenant: str, approval_id: str) -> ApprovalRequest:
    approval_id = uuid_param(approval_id, "approval_id")
    try:
        return service.get_request(tenant, approval_id)
    except service.ApprovalNotFound:
        raise falcon.HTTPNotFound(
            title="Approval not found", description=f"No approval {approval_id} in your tenant."
        ) from None


class ApprovalCollection:
    docs = {
        "GET": route(
            "Approvals I am an approver of (newest first)",
            params=(
                Param(
                    "status",
                    description="pending (awaiting my decision), approved, rejected or cancelled",
                ),
                Param("all", description="admins and auditors: every approval of the tenant"),
                Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 200}),
                Param("cursor"),
            ),
            errors=(400,),
            roles=ROLES,
        )
    }

    def on_get(self, req, resp):
        principal = req.context.principal
        status = parse_choice(req, "status", ApprovalStatus.ALL)
        limit = parse_limit(req)
        query = ApprovalRequest.select().where(ApprovalRequest.tenant_id == principal.tenant)
        if req.get_param_as_bool("all") and principal.has_role("auditor"):
            if status:
                query = query.where(ApprovalRequest.status == status)
        else:
            where = (ApprovalSlot.tenant_id == principal.tenant) & (
                ApprovalSlot.approver == principal.sub
            )
            if status == ApprovalStatus.PENDING:
                where &= ApprovalSlot.status == ApprovalStatus.PENDING
            mine = ApprovalSlot.select(ApprovalSlot.request).where(where)
            query = query.where(ApprovalRequest.id.in_(mine))
            if status:
                query = query.where(ApprovalRequest.status == status)
        if status == ApprovalStatus.PENDING:
            # Cancelling an execution closes its approvals; should that have been cut
            # short, housekeeping closes them later, and they are no longer awaited.
            live = Execution.select(Execution.id).where(
                Execution.status.not_in(ExecutionStatus.FINAL)
            )
            query = query.where(ApprovalRequest.execution.in_(live))
        rows = list(after_cursor(query, ApprovalRequest, page_cursor(req)).limit(limit))
        resp.media = {
            "items": [service.request_dict(r, principal.sub) for r in rows],
            "next_cursor": next_cursor(rows, limit),
        }


class ApprovalItem:
    docs = {
        "GET": route(
            "One approval with its stages and decisions",
            params=(ID,),
            errors=(403, 404),
            roles=ROLES,
        )
    }

    def on_get(self, req, resp, approval_id):
        principal = req.context.principal
        request = _get(principal.tenant, approval_id)
        involved = (
            ApprovalSlot.select()
            .where((ApprovalSlot.request == request.id) & (ApprovalSlot.approver == principal.sub))
            .exists()
        )
        if not (
            involved
            or principal.has_role("auditor", "service")
            or principal.sub in (request.owner, request.initiator)
        ):
            raise falcon.HTTPForbidden(
                title="Forbidden",
                description="Only its approvers, the entity's owner, auditors and admins see "
                "an approval.",
            )
        resp.media = service.request_dict(request, principal.sub, with_refusals=True)


class ApprovalDecision:
    docs = {
        "POST": route(
            "Approve or reject (once; the decision is final). Needs a slot in the "
            "current stage, the approver role (or a role the stage names) and an active "
            "directory entry; the entity's creator, owner and submitter never decide an "
            "approval that approves it. Refusals are recorded and shown on GET "
            "/approvals/{id}. 'version' (optional) names the entity version reviewed: "
            "another than the approval's is a 409; an entity that moved on (deleted, "
            "another version or status) is a 409 that closes the approval as stale",
            request=DecisionIn,
            response=DecisionOut,
            params=(ID,),
            errors=(403, 404, 409),
            roles=ROLES,
            # Read after the approval is found: an unknown approval is a 404 whatever
            # the body.
            parses_body=False,
        )
    }

    def __init__(self, resume: Resume, entity: EntityLookup, broker, max_body_bytes: int):
        self.resume = resume
        self.broker = broker
        self.entity = entity
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp, approval_id):
        principal = req.context.principal
        request = _get(principal.tenant, approval_id)
        body = parse_body(DecisionIn, read_json(req, self.max_body_bytes))
        try:
            # Before the entity lookup: only approvers may make this service call the api.
            service.check_approver(request, principal.sub, principal.roles)
            gone = False
            try:
                entity = self.entity(principal.tenant, request.entity_type, request.entity_id)
            except EntityGone:
                entity, gone = None, True
            service.check_entity_people(request, principal.sub, entity)
            service.check_current(
                request, entity, gone=gone, version=body.version, broker=self.broker
            )
            version = _version(entity)
            result = service.decide(
                principal.tenant,
                request.id,
                principal.sub,
                body.decision,
                body.comment,
                entity_version=version,
                roles=principal.roles,
            )
        except service.NotAnApprover as exc:
            service.record_refusal(request, principal.sub, body.decision, exc)
            if isinstance(exc, service.DeciderNotInDirectory):
                self._reassign(request)
            raise falcon.HTTPForbidden(
                title=_REFUSAL_TITLES[exc.reason], description=str(exc)
            ) from None
        except service.AlreadyDecided as exc:
            raise falcon.HTTPConflict(title="Already decided", description=str(exc)) from None
        except service.ExecutionNotWaiting as exc:
            raise falcon.HTTPConflict(title="Execution not waiting", description=str(exc)) from None
        except service.StaleApproval as exc:
            raise falcon.HTTPConflict(title="Approval is stale", description=str(exc)) from None
        except service.VersionNotReviewed as exc:
            raise falcon.HTTPConflict(title="Stale version", description=str(exc)) from None
        if result.deliveries:
            try:
                delivery.enqueue(self.broker, result.deliveries)
            except Exception as exc:  # noqa: BLE001 - housekeeping re-sends pending deliveries
                log.warning("approver e-mails not queued yet: %s", exc)
        # The parked job names who decides now (the next stage's people), or how its
        # execution ended (nobody left to decide the next stage).
        ending.report(self.broker, [result.ended])
        if result.outcome is None:
            service.report_approvers(self.broker, result.request.id)
        job_id = None
        if result.outcome in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
            job_id = self._resume(result.request)
        resp.media = {
            "id": result.request.id,
            "status": result.request.status,
            "stage": result.request.current_stage + 1,
            "outcome": result.outcome,
            "my_decision": result.slot.status,
            "job": {"id": job_id, "href": f"/jobs/{job_id}"} if job_id else None,
        }

    def _reassign(self, request: ApprovalRequest) -> None:
        """Give a departed decider's open slots to others now (housekeeping would)."""
        from workflow_service.approvals import reassign

        try:
            reassign.reassign_and_send(request.id, self.broker, self.resume)
        except Exception as exc:  # noqa: BLE001 - housekeeping does it later
            log.warning("approval %s: reassignment left to housekeeping: %s", request.id, exc)

    def _resume(self, request: ApprovalRequest) -> str | None:
        """Resume the execution; wait briefly if its worker has not parked it yet.

        The step's transaction commits the open request a moment before the engine
        marks the execution ``waiting_approval``; a decision inside that gap finds
        nothing to resume. The scheduler's approval sweep covers anything left.
        """
        for pause in RESUME_BACKOFF_S:
            time.sleep(pause)
            try:
                job_id = self.resume(request.execution_id, f"approval:{request.step_key}")
            except Exception as exc:  # noqa: BLE001 - the decision is committed already
                # e.g. Redis down after the execution moved to pending: the engine's
                # sweep re-sends its run message; the caller still gets its answer.
                log.warning("resume of %s not sent: %s", request.execution_id, exc)
                return None
            if job_id:
                return job_id
            status = (
                Execution.select(Execution.status)
                .where(Execution.id == request.execution_id)
                .scalar()
            )
            if status != ExecutionStatus.RUNNING:
                return None
        log.warning("execution %s still running; the sweep will resume it", request.execution_id)
        return None


def policy_lookup(api) -> EntityLookup:
    """The entity as the api shows it now (None when it cannot be read): its version,
    and the people who may not approve it (creator, owner, submitter).
    :class:`EntityGone` when the api answers 404 (deleted)."""

    def lookup(tenant: str, entity_type: str, entity_id: str) -> dict | None:
        if entity_type != "policy":
            return None
        try:
            response = api.request("GET", f"/policies/{entity_id}", tenant)
            if response.status_code == 404:
                raise EntityGone(f"{entity_type} {entity_id}")
            if response.status_code == 200:
                body = response.json()
                return body if isinstance(body, dict) else None
        except EntityGone:
            raise
        except Exception as exc:  # noqa: BLE001 - the decision must not depend on the api
            log.warning("could not read %s %s: %s", entity_type, entity_id, exc)
        return None

    return lookup


def add_routes(
    app: falcon.App,
    docs: ApiDocs,
    *,
    resume: Resume,
    entity: EntityLookup,
    broker,
    max_body_bytes: int,
) -> None:
    docs.add_route(app, "/approvals", ApprovalCollection())
    docs.add_route(app, "/approvals/{approval_id}", ApprovalItem())
    docs.add_route(
        app,
        "/approvals/{approval_id}/decision",
        ApprovalDecision(resume, entity, broker, max_body_bytes),
    )


def register(app: falcon.App, docs: ApiDocs, context) -> None:
    """Route registrar for the admin web: /approvals and the workflow templates."""
    from workflow_service.approvals import catalog

    limit = context.settings.max_body_bytes
    add_routes(
        app,
        docs,
        resume=context.engine.resume,
        entity=policy_lookup(context.engine.api),
        broker=context.engine.broker,
        max_body_bytes=limit,
    )
    catalog.add_routes(app, docs, store=context.store, max_body_bytes=limit)
