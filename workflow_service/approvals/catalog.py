"""Ready-made workflows, listed at ``GET /workflows/templates`` and instantiated with
``POST /workflows/from-template/{name}``.

A tenant has at most one workflow per template: the first create makes it (201), a
later one answers 200 with it, whatever it has become since (edited, deactivated),
unless it was archived or deleted; then a new one is made. The claim is a row with a
unique (tenant, template) key, inserted before the workflow and in its transaction, so
concurrent creates make one workflow, not one each.

A template whose events need more than one trigger (``evidence-expiry``: one workflow
on ``evidence.expiring``, one on ``evidence.expired``) lists its further workflows in
``also``; each is claimed on its own (``<template>.<key>``), so the same rules hold for
every one, and the answer is the first workflow with all of them in ``workflows``.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Literal

import falcon
from pydantic import Field

from shared.http import ApiDocs, Param, StrictModel, parse_body, read_json, route
from workflow_service.approvals.models import TemplateWorkflow
from workflow_service.db import database
from workflow_service.definitions import InvalidDefinition, WorkflowDefinition, validate_definition
from workflow_service.models import Workflow, WorkflowStatus
from workflow_service.web.common import READ_ROLES, invalid_definition
from workflow_service.web.serialize import workflow_body
from workflow_service.workflows import WorkflowStore

_APPROVED_BODY = (
    'Your policy "{{ entity.title }}" was approved'
    "{% if approval.decided_by %} by {{ approval.decided_by }}{% endif %}.\n"
    "{% for c in approval.comments %}\n- {{ c.approver }}: {{ c.comment }}{% endfor %}"
)
_REJECTED_BODY = (
    'Changes were requested on your policy "{{ entity.title }}"; it is back in draft.\n'
    "{% for c in approval.comments %}\n- {{ c.approver }}: {{ c.comment }}{% endfor %}"
)

_ASSESSMENT_COMPLETED_BODY = (
    'Your assessment "{{ entity.title }}" was completed'
    "{% if approval.decided_by %}; {{ approval.decided_by }} approved it{% endif %}.\n"
    "{% for c in approval.comments %}\n- {{ c.approver }}: {{ c.comment }}{% endfor %}"
)
_ASSESSMENT_REOPENED_BODY = (
    'Changes were requested on your assessment "{{ entity.title }}"; it is back in '
    "progress.\n"
    "{% for c in approval.comments %}\n- {{ c.approver }}: {{ c.comment }}{% endfor %}"
)
_EXPIRING_BODY = (
    'The evidence "{{ entity.title }}" you collected expires in {{ entity.days_left }} '
    "day(s){% if entity.valid_until %}, on {{ entity.valid_until }}{% endif %}. Collect it "
    "again and submit the new evidence before then."
)
_EXPIRED_BODY = (
    'The evidence "{{ entity.title }}" expired'
    "{% if entity.valid_until %} on {{ entity.valid_until }}{% endif %}. "
    "{% if entity.policies %}Policies it supported: {{ entity.policies | join(', ') }}."
    "{% endif %}"
)

TEMPLATES: dict[str, dict[str, Any]] = {
    "policy-approval": {
        "name": "Policy approval",
        "description": (
            "When a policy moves to in_review, an approver must approve it. Approved: the "
            "policy moves to approved and its owner is told. Rejected: it goes back to "
            "draft and the owner gets the reviewers' comments."
        ),
        "entity_type": "policy",
        "trigger": "on_status_change",
        "conditions": [{"field": "status", "op": "eq", "value": "in_review"}],
        "steps": [
            {
                "kind": "require_approval",
                "name": "Approver review",
                "approvers": ["role:approver"],
                "mode": "any",
                "title": 'Approve policy "{{ entity.title }}" (version {{ entity.version }})',
                "due_in": "3d",
                "escalate_to": ["role:admin"],
                "on_approve": [
                    {
                        "kind": "change_status",
                        "name": "Mark approved",
                        "to": "approved",
                        "comment": "Approved in review",
                    },
                    {
                        "kind": "notify",
                        "name": "Tell the owner",
                        "recipients": ["owner"],
                        "channels": ["in_app", "email"],
                        "subject": "Policy approved: {{ entity.title }}",
                        "body": _APPROVED_BODY,
                    },
                ],
                "on_reject": [
                    {
                        "kind": "change_status",
                        "name": "Back to draft",
                        "to": "draft",
                        "comment": "Changes requested in review",
                    },
                    {
                        "kind": "notify",
                        "name": "Tell the owner",
                        "recipients": ["owner"],
                        "channels": ["in_app", "email"],
                        "subject": "Changes requested: {{ entity.title }}",
                        "body": _REJECTED_BODY,
                    },
                ],
            }
        ],
    },
    "assessment-completion": {
        "name": "Assessment completion",
        "description": (
            "When an assessment moves to under_review, an approver (never its assessor, "
            "creator or whoever sent it to review) must approve it. Approved: the "
            "assessment moves to completed, recorded as the approver's decision, and the "
            "assessor is told. Rejected: it goes back to in_progress and the assessor gets "
            "the reviewers' comments."
        ),
        "entity_type": "assessment",
        "trigger": "on_status_change",
        "conditions": [{"field": "status", "op": "eq", "value": "under_review"}],
        "steps": [
            {
                "kind": "require_approval",
                "name": "Approver review",
                "approvers": ["role:approver"],
                "mode": "any",
                "title": 'Approve assessment "{{ entity.title }}" (version {{ entity.version }})',
                "due_in": "3d",
                "escalate_to": ["role:admin"],
                "on_approve": [
                    {
                        "kind": "change_status",
                        "name": "Complete",
                        "to": "completed",
                        "comment": "Approved in review",
                    },
                    {
                        "kind": "notify",
                        "name": "Tell the assessor",
                        "recipients": ["owner"],
                        "channels": ["in_app", "email"],
                        "subject": "Assessment completed: {{ entity.title }}",
                        "body": _ASSESSMENT_COMPLETED_BODY,
                    },
                ],
                "on_reject": [
                    {
                        "kind": "change_status",
                        "name": "Back to in progress",
                        "to": "in_progress",
                        "comment": "Changes requested in review",
                    },
                    {
                        "kind": "notify",
                        "name": "Tell the assessor",
                        "recipients": ["owner"],
                        "channels": ["in_app", "email"],
                        "subject": "Changes requested: {{ entity.title }}",
                        "body": _ASSESSMENT_REOPENED_BODY,
                    },
                ],
            }
        ],
    },
    "evidence-expiry": {
        "name": "Evidence expiry",
        "description": (
            "Two workflows. When evidence is about to expire (evidence.expiring, with "
            "days_left), its collector is told in-app and by e-mail. When it has expired "
            "(evidence.expired), the collector gets a task to collect it again and the "
            "owners of the policies it supported are told in-app and by e-mail (the "
            "event's policy_owners, computed by the api)."
        ),
        "entity_type": "evidence",
        "trigger": "on_expiring",
        "steps": [
            {
                "kind": "notify",
                "name": "Remind the collector",
                "recipients": ["owner"],
                "channels": ["in_app", "email"],
                "subject": "Evidence expiring in {{ entity.days_left }} day(s): {{ entity.title }}",
                "body": _EXPIRING_BODY,
            }
        ],
        "also": [
            {
                "key": "expired",
                "name": "Evidence expired",
                "trigger": "on_expired",
                "steps": [
                    {
                        "kind": "create_task",
                        "name": "Collect it again",
                        "assignee": "owner",
                        "title": "Collect expired evidence again: {{ entity.title }}",
                        "description": _EXPIRED_BODY,
                        "due_in_days": 7,
                    },
                    {
                        "kind": "notify",
                        "name": "Tell the policies' owners",
                        "recipients": ["policy_owners"],
                        "channels": ["in_app", "email"],
                        "subject": "Evidence expired: {{ entity.title }}",
                        "body": _EXPIRED_BODY,
                    },
                ],
            }
        ],
    },
}


def template_parts(template: str) -> list[tuple[str, dict[str, Any]]]:
    """``(claim key, workflow definition)`` of each workflow ``template`` makes: the
    template itself, then each of its ``also`` (keyed ``<template>.<key>``)."""
    main = {k: v for k, v in TEMPLATES[template].items() if k != "also"}
    parts = [(template, copy.deepcopy(main))]
    for extra in TEMPLATES[template].get("also", ()):
        part = {**main, "conditions": [], **{k: v for k, v in extra.items() if k != "key"}}
        parts.append((f"{template}.{extra['key']}", copy.deepcopy(part)))
    return parts


class FromTemplateIn(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["active", "inactive"] = "active"
    #: Replaces the approvers of the template's approval step (e.g. ["user:carol"]).
    approvers: list[str] | None = Field(default=None, min_length=1, max_length=50)


def template_list() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "title": t["name"],
            "description": t["description"],
            "entity_type": t["entity_type"],
            "trigger": t["trigger"],
            "workflows": [
                {"name": part["name"], "trigger": part["trigger"]}
                for _, part in template_parts(name)
            ],
            "href": f"/workflows/from-template/{name}",
        }
        for name, t in TEMPLATES.items()
    ]


class TemplateCollection:
    docs = {
        "GET": route(
            "The ready-made workflow templates, each with what it does",
            roles=(*READ_ROLES, "admin"),
        )
    }

    def on_get(self, req, resp):
        resp.media = {"items": template_list()}


def instantiate(
    store: WorkflowStore,
    tenant_id: str,
    actor: str,
    template: str,
    definition: WorkflowDefinition,
    status: str,
) -> tuple[Workflow, bool]:
    """The tenant's workflow of ``template``: (the existing one, False), or (a new one
    made from ``definition``, True). One per tenant and template, even under races."""
    for _ in range(3):
        token = str(uuid.uuid4())  # never a workflow's id: marks the claim as ours
        with database.atomic() as txn:
            # A write first: on SQLite it takes the write lock before anything is read;
            # on PostgreSQL a racing insert waits for the first to commit, then yields.
            TemplateWorkflow.insert(
                tenant_id=tenant_id, template=template, workflow_id=token
            ).on_conflict_ignore().execute()
            claim = TemplateWorkflow.get(
                (TemplateWorkflow.tenant_id == tenant_id) & (TemplateWorkflow.template == template)
            )
            if claim.workflow_id != token:
                existing = Workflow.get_or_none(
                    (Workflow.id == claim.workflow_id) & (Workflow.tenant_id == tenant_id)
                )
                if existing is not None and existing.status != WorkflowStatus.ARCHIVED:
                    return existing, False
                # Archived or deleted: take the claim over, unless another request did.
                taken = (
                    TemplateWorkflow.update(workflow_id=token)
                    .where(
                        (TemplateWorkflow.id == claim.id)
                        & (TemplateWorkflow.workflow_id == claim.workflow_id)
                    )
                    .execute()
                )
                if not taken:
                    txn.rollback()
                    continue
            workflow = store.create(tenant_id, actor, definition, status)
            TemplateWorkflow.update(workflow_id=workflow.id).where(
                TemplateWorkflow.workflow_id == token
            ).execute()
        # Again after commit: workers that reloaded in between must see it.
        store.invalidate(tenant_id)
        return workflow, True
    raise falcon.HTTPConflict(
        title="Template busy",
        description=f"Workflows from {template!r} are being replaced right now; try again.",
    )


class WorkflowFromTemplate:
    docs = {
        "POST": route(
            "Create the tenant's workflow from a ready template (" + ", ".join(TEMPLATES) + "; "
            "see GET /workflows/templates): 201 with the new workflow, or 200 with the one "
            "made from it before (one per tenant and template; a new one only after it was "
            "archived or deleted; the options of a repeat are not applied). A template of "
            "several workflows answers with the first and lists them all in 'workflows'",
            request=FromTemplateIn,
            status=201,
            params=(Param("template", "path", "Template name: " + ", ".join(TEMPLATES)),),
            errors=(404,),
            roles=("editor", "admin"),
            # Read after the template is found (404 first); no body means no options.
            parses_body=False,
        )
    }

    def __init__(self, store: WorkflowStore, max_body_bytes: int):
        self.store = store
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp, template):
        principal = req.context.principal
        if template not in TEMPLATES:
            raise falcon.HTTPNotFound(
                title="Template not found",
                description=f"No template {template!r}; templates: {', '.join(TEMPLATES)}.",
            )
        raw = read_json(req, self.max_body_bytes) if req.content_length else {}
        options = parse_body(FromTemplateIn, raw)
        definitions = []
        for index, (key, data) in enumerate(template_parts(template)):
            if options.name:
                data["name"] = options.name if index == 0 else f"{options.name}: {data['name']}"
            if options.approvers:
                for step in data["steps"]:
                    if step["kind"] == "require_approval":
                        step["approvers"] = list(options.approvers)
            try:
                definitions.append((key, validate_definition(data)))
            except InvalidDefinition as exc:
                raise invalid_definition(exc) from None
        made = [
            instantiate(
                self.store, principal.tenant, principal.sub, key, definition, options.status
            )
            for key, definition in definitions
        ]
        workflow = made[0][0]
        resp.status = falcon.HTTP_201 if any(created for _, created in made) else falcon.HTTP_200
        resp.location = f"/workflows/{workflow.id}"
        resp.media = {**workflow_body(workflow), "workflows": [workflow_body(w) for w, _ in made]}


def add_routes(
    app: falcon.App, docs: ApiDocs, *, store: WorkflowStore, max_body_bytes: int
) -> None:
    docs.add_route(app, "/workflows/templates", TemplateCollection())
    docs.add_route(
        app, "/workflows/from-template/{template}", WorkflowFromTemplate(store, max_body_bytes)
    )
