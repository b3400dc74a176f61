"""``create_task``: a to-do for one person or for everyone with a role, with an
optional due time in days. ``assignee`` is a recipient (:mod:`.recipients`):
``user:<id>`` or a bare id, ``owner``, ``initiator``, or ``role:<name>`` (the same as
the ``role`` option); the task stores the bare user id."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from shared.auth import ROLES
from shared.db import utcnow
from workflow_service.kernel import hooks
from workflow_service.models import Task
from workflow_service.steps.base import Step, StepConfig, StepContext, StepFailed, StepOutcome
from workflow_service.steps.notify import Template
from workflow_service.steps.recipients import (
    Recipient,
    check_single_recipient,
    nobody_as,
    parse_recipient,
    person_of,
)
from workflow_service.templating import MAX_TEMPLATE_CHARS


def _role(value: str) -> str:
    if value not in ROLES:
        raise ValueError(f"unknown role {value!r}; roles: {', '.join(ROLES)}")
    return value


class CreateTaskConfig(StepConfig):
    title: Template = Field(min_length=1, max_length=300)
    description: Template = Field(default="", max_length=MAX_TEMPLATE_CHARS)
    assignee: Annotated[Recipient, AfterValidator(check_single_recipient)] | None = None
    role: Annotated[str, Field(max_length=32), AfterValidator(_role)] | None = None
    due_in_days: float | None = Field(default=None, gt=0, le=3650)

    @model_validator(mode="after")
    def _someone(self):
        if (self.assignee is None) == (self.role is None):
            raise ValueError("give exactly one of 'assignee' and 'role'")
        return self


class CreateTask(Step):
    kind = "create_task"
    Config = CreateTaskConfig

    _rendered: tuple[str, str] | None = None

    def prepare(self, ctx: StepContext) -> None:
        config: CreateTaskConfig = self.config  # type: ignore[assignment]
        self._rendered = (ctx.render(config.title), ctx.render(config.description))

    def run(self, ctx: StepContext) -> StepOutcome:
        config: CreateTaskConfig = self.config  # type: ignore[assignment]
        assignee, role = None, config.role
        if config.assignee is not None:
            spec = parse_recipient(config.assignee)
            if spec.kind == "role":
                role = spec.value
            else:
                assignee = person_of(config.assignee, ctx)
                if not assignee:
                    raise StepFailed(f"assignee {nobody_as(config.assignee)}")
        if self._rendered is None:
            self.prepare(ctx)
        title, description = self._rendered  # type: ignore[misc]
        task_id = ctx.message_id("task")
        due = utcnow() + timedelta(days=config.due_in_days) if config.due_in_days else None
        Task.insert(
            id=task_id,
            tenant_id=ctx.execution.tenant_id,
            execution=ctx.execution.id,
            step_key=ctx.step_key,
            title=title[:300],
            description=description,
            assignee=assignee,
            assignee_role=role,
            entity_type=ctx.trigger.entity_type,
            entity_id=ctx.trigger.entity_id,
            due_at=due,
        ).on_conflict_ignore().execute()
        hooks.task_recorded(ctx.execution.tenant_id, task_id, "created", None, title=title[:300])
        return StepOutcome.completed(
            {"task_id": task_id, "assignee": assignee, "role": role, "title": title}
        )
