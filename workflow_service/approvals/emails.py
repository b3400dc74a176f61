"""What an approver is told when a stage asks for their decision (in-app and e-mail).

The message must stand on its own: an approver reading it in a mail client knows what
they are asked to approve (the entity's type, title and the version under review),
who asked, and how to decide, without looking anything up first.
"""

from __future__ import annotations

from typing import Any

from workflow_service.approvals.models import ApprovalRequest
from workflow_service.models import Execution, Workflow
from workflow_service.users import directory


def decision_request(request: ApprovalRequest, index: int) -> tuple[str, str]:
    """The subject and plain-text body asking for a decision on stage ``index``."""
    data, workflow_name = _trigger(request)
    kind = request.entity_type.replace("_", " ")
    title = _one_line(data.get("title")) or request.entity_id
    version = request.entity_version
    requester = _requester(request, data)
    stages = len(request.stages)
    stage = f" (stage {index + 1} of {stages})" if stages > 1 else ""
    # The subject is the step's own title (a template names the entity and version there).
    subject = f"Approval requested: {request.title}"
    lines = [
        f"{requester} asks for your decision{stage}: {request.title}",
        "",
        f"{kind.capitalize()}: {title}",
        f"{kind.capitalize()} id: {request.entity_id}",
        f"Version to decide: {version if version is not None else 'not recorded'}",
        f"Requested by: {requester}",
    ]
    if workflow_name:
        lines.append(f"Workflow: {workflow_name}")
    if request.due_at is not None:
        lines.append(f"Due: {request.due_at.isoformat(timespec='minutes')} UTC")
    lines += [
        f"Approval id: {request.id}",
        "",
        "To decide, call the workflow service with your own token:",
        f"  POST /approvals/{request.id}/decision",
        '  {"decision": "approve", "comment": "..."}   or   {"decision": "reject", ...}',
        f"See the request and its decisions with GET /approvals/{request.id}.",
    ]
    return subject[:300], "\n".join(lines)


def _trigger(request: ApprovalRequest) -> tuple[dict[str, Any], str | None]:
    """The trigger event's entity snapshot and the workflow's name."""
    row = (
        Execution.select(Execution.event, Workflow.name)
        .join(Workflow)
        .where(Execution.id == request.execution_id)
        .tuples()
        .first()
    )
    if row is None:
        return {}, None
    event, name = row
    data = (event or {}).get("data") if isinstance(event, dict) else None
    return (data if isinstance(data, dict) else {}), name


def _requester(request: ApprovalRequest, data: dict[str, Any]) -> str:
    """Who asked: the person whose change started the workflow, by name where known."""
    user_id = request.initiator or _one_line(data.get("submitted_by"))
    if not user_id:
        return "A workflow"
    user = directory.get_user(request.tenant_id, user_id)
    name = _one_line(user.name) if user is not None else ""
    return f"{name} ({user_id})" if name and name != user_id else user_id


def _one_line(value: Any) -> str:
    """A value for one line of text: a string without line breaks, else empty."""
    if not isinstance(value, str):
        return ""
    return " ".join(value.split())
