"""Ready-made workflows, instantiated with ``POST /workflows/from-template/{name}``."""

from __future__ import annotations

import copy
from typing import Any, Literal

import falcon
from pydantic import Field

from shared.auth import require_role
from shared.http import ApiDocs, Operation, Param, StrictModel, parse_body, read_json
from workflow_service.definitions import InvalidDefinition, validate_definition
from workflow_service.web.common import invalid_definition
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
    }
}


class FromTemplateIn(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["active", "inactive"] = "active"
    #: Replaces the approvers of the template's approval step (e.g. ["user:carol"]).
    approvers: list[str] | None = Field(default=None, min_length=1, max_length=50)


class WorkflowFromTemplate:
    docs = {
        "POST": Operation(
            "Create a workflow from a ready template (policy-approval)",
            request=FromTemplateIn,
            status=201,
            params=(Param("template", "path", "Template name: " + ", ".join(TEMPLATES)),),
            errors=(404,),
            roles=("editor", "admin"),
        )
    }

    def __init__(self, store: WorkflowStore, max_body_bytes: int):
        self.store = store
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp, template):
        principal = require_role(req, "editor")
        if template not in TEMPLATES:
            raise falcon.HTTPNotFound(
                title="Template not found",
                description=f"No template {template!r}; templates: {', '.join(TEMPLATES)}.",
            )
        raw = read_json(req, self.max_body_bytes) if req.content_length else {}
        options = parse_body(FromTemplateIn, raw)
        data = copy.deepcopy(TEMPLATES[template])
        if options.name:
            data["name"] = options.name
        if options.approvers:
            for step in data["steps"]:
                if step["kind"] == "require_approval":
                    step["approvers"] = list(options.approvers)
        try:
            definition = validate_definition(data)
        except InvalidDefinition as exc:
            raise invalid_definition(exc) from None
        workflow = self.store.create(principal.tenant, principal.sub, definition, options.status)
        resp.status = falcon.HTTP_201
        resp.location = f"/workflows/{workflow.id}"
        resp.media = workflow_body(workflow)


def add_routes(
    app: falcon.App, docs: ApiDocs, *, store: WorkflowStore, max_body_bytes: int
) -> None:
    docs.add_route(
        app, "/workflows/from-template/{template}", WorkflowFromTemplate(store, max_body_bytes)
    )
