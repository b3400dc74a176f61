"""``assign``: record who an entity is assigned to (``assignee``: one person in the
recipient grammar of :mod:`.recipients`: ``user:<id>`` or a bare id, ``owner`` or
``initiator``; ``purpose``: a label such as ``reviewer``)."""

from __future__ import annotations

from pydantic import Field

from workflow_service.models import Assignment
from workflow_service.steps.base import Step, StepConfig, StepContext, StepFailed, StepOutcome
from workflow_service.steps.recipients import Person, nobody_as, person_of
from workflow_service.steps.registry import register


class AssignConfig(StepConfig):
    assignee: Person
    purpose: str = Field(default="owner", min_length=1, max_length=64)


@register
class Assign(Step):
    kind = "assign"
    Config = AssignConfig

    def run(self, ctx: StepContext) -> StepOutcome:
        config: AssignConfig = self.config  # type: ignore[assignment]
        assignee = person_of(config.assignee, ctx)
        if not assignee:
            raise StepFailed(f"assignee {nobody_as(config.assignee)}")
        Assignment.insert(
            id=ctx.message_id(assignee),
            tenant_id=ctx.execution.tenant_id,
            execution=ctx.execution.id,
            step_key=ctx.step_key,
            entity_type=ctx.trigger.entity_type,
            entity_id=ctx.trigger.entity_id,
            assignee=assignee,
            purpose=config.purpose,
        ).on_conflict_ignore().execute()
        return StepOutcome.completed({"assignee": assignee, "purpose": config.purpose})
