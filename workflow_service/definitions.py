"""What a valid workflow definition is: triggers, conditions, steps.

:func:`validate_definition` returns a :class:`WorkflowDefinition` or raises
:class:`InvalidDefinition` with one ``{"field", "message"}`` per problem
(``trigger``, ``conditions.0.op``, ``steps.2.recipients.0``), which the admin API
answers as a 422.
"""

from __future__ import annotations

from typing import Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.events import EVENT_VERBS, EntityType
from shared.lifecycles import lifecycle_of
from workflow_service.conditions import OPERATORS
from workflow_service.steps.base import Directory
from workflow_service.steps.change_status import ChangeStatusConfig
from workflow_service.steps.recipients import (
    INITIATOR,
    OWNER,
    POLICY_OWNERS,
    foreign_recipients,
    named_people,
    named_users,
)
from workflow_service.steps.registry import step_class, step_errors

#: The trigger an event verb fires (``policy.status_changed`` -> ``on_status_change``);
#: every verb of :data:`shared.events.EVENT_VERBS` has one.
EVENT_TRIGGERS = {
    "created": "on_create",
    "updated": "on_update",
    "status_changed": "on_status_change",
    "deleted": "on_delete",
    "deadline_approaching": "on_deadline_approaching",
    "deadline_passed": "on_deadline_passed",
    "assigned": "on_assign",
    "reviewed": "on_review",
    "due_approaching": "on_due_approaching",
    "overdue": "on_overdue",
    "expiring": "on_expiring",
    "expired": "on_expired",
}
assert {v for verbs in EVENT_VERBS.values() for v in verbs} == set(EVENT_TRIGGERS)
#: Triggers no event fires: the scheduler's and a person's.
UNEVENTFUL_TRIGGERS = ("scheduled", "manual")
TRIGGERS = (*EVENT_TRIGGERS.values(), *UNEVENTFUL_TRIGGERS)
Trigger = Literal[TRIGGERS]  # type: ignore[valid-type]
#: The triggers each entity type has events for (plus scheduled and manual).
ENTITY_TRIGGERS: dict[str, tuple[str, ...]] = {
    entity: (*(EVENT_TRIGGERS[v] for v in verbs), *UNEVENTFUL_TRIGGERS)
    for entity, verbs in EVENT_VERBS.items()
}
Operator = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists"]
assert set(Operator.__args__) == set(OPERATORS)  # type: ignore[attr-defined]
FIELD_PATTERN = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
MAX_STEPS = 50
#: Longest string anywhere in a workflow's own fields, and in a condition's value.
MAX_FIELD_CHARS = 2000
MAX_VALUE_CHARS = 1000
MAX_VALUE_ITEMS = 100


def trigger_for_event(event_type: str) -> str | None:
    return EVENT_TRIGGERS.get(event_type.split(".", 1)[-1])


class InvalidDefinition(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_FIELD_CHARS)


def _bounded_value(value: Any) -> None:
    """A condition value: a short scalar, or a short list of them."""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_VALUE_ITEMS:
        raise ValueError(f"a condition value may list at most {MAX_VALUE_ITEMS} values")
    for item in items:
        if isinstance(item, list | dict):
            raise ValueError("a condition value is a string, number, boolean or a list of them")
        if isinstance(item, str) and len(item) > MAX_VALUE_CHARS:
            raise ValueError(f"a condition value may be at most {MAX_VALUE_CHARS} characters")


class Condition(Strict):
    field: str = Field(min_length=1, max_length=200, pattern=FIELD_PATTERN)
    op: Operator
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self):
        value = self.value
        _bounded_value(value)
        if self.op in ("in", "not_in") and not isinstance(value, list):
            raise ValueError(f"'{self.op}' needs a list value")
        if self.op in ("gt", "gte", "lt", "lte") and (
            isinstance(value, bool) or not isinstance(value, int | float | str)
        ):
            raise ValueError(f"'{self.op}' needs a number or a string value")
        if self.op == "exists" and value is not None and not isinstance(value, bool):
            raise ValueError("'exists' takes true, false or no value")
        if self.op == "contains" and value is None:
            raise ValueError("'contains' needs a value")
        return self


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday_names(field: str) -> str:
    """A crontab day-of-week field with its numbers written as names.

    Crontab counts 0 (and 7) as Sunday; APScheduler 3's CronTrigger counts 0 as
    Monday, so ``1`` would fire on Tuesdays. Names mean the same to both.
    """
    names: list[str] = []
    for part in field.split(","):
        base, _, step = part.partition("/")
        if not any(c.isdigit() for c in part):
            names.append(part)  # *, names and their ranges
            continue
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            first, last = (int(n) for n in base.split("-", 1))
        else:
            first = int(base)
            last = 6 if step else first
        if not (0 <= first <= 7 and 0 <= last <= 7):
            raise ValueError(f"day of week {part!r}: days are 0-7 (0 and 7 are Sunday)")
        if first > last:
            raise ValueError(f"day of week {part!r}: a range runs from low to high")
        names.extend(_WEEKDAYS[day % 7] for day in range(first, last + 1, int(step or 1)))
    return ",".join(dict.fromkeys(names))


def cron_trigger(cron: str, timezone: str = "UTC") -> CronTrigger:
    """APScheduler's trigger for a crontab line, with crontab's day-of-week numbering."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"a crontab line has 5 fields, not {len(fields)}")
    fields[4] = _weekday_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)


class ScheduleConfig(Strict):
    """``scheduled`` workflows: a crontab line and the entity each run is for."""

    cron: str = Field(min_length=9, max_length=100)
    entity_id: str = Field(min_length=1, max_length=64)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)

    @model_validator(mode="after")
    def _valid_cron(self):
        try:
            cron_trigger(self.cron, self.timezone)
        except (ValueError, LookupError) as exc:
            raise ValueError(f"invalid cron or timezone: {exc}") from None
        return self


class WorkflowDefinition(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    entity_type: EntityType
    trigger: Trigger
    trigger_config: dict[str, Any] = Field(default_factory=dict)
    conditions: list[Condition] = Field(default_factory=list, max_length=50)
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_STEPS)
    #: Steps may name user ids the tenant's directory does not have (yet).
    allow_unknown_users: bool = False

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _pydantic_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "body")
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        errors.append({"field": field, "message": message})
    return errors


def validate_definition(data: Any) -> WorkflowDefinition:
    if not isinstance(data, dict):
        raise InvalidDefinition([{"field": "body", "message": "must be a JSON object"}])
    try:
        definition = WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        errors = _pydantic_errors(exc)
        # Report step problems too, so one answer names everything to fix.
        if isinstance(data.get("steps"), list) and data["steps"]:
            errors.extend(step_errors(data["steps"]))
        raise InvalidDefinition(errors) from None
    errors = [*_foreign_trigger(definition)]
    errors += foreign_recipients(definition.entity_type, definition.steps)
    errors += step_errors(definition.steps) or [
        *_undecided_approvals(definition.entity_type, definition.steps),
        *_unknown_statuses(definition.entity_type, definition.steps),
    ]
    if definition.trigger == "scheduled":
        try:
            ScheduleConfig.model_validate(definition.trigger_config)
        except ValidationError as exc:
            errors.extend(_pydantic_errors(exc, "trigger_config"))
        errors.extend(_needs_entity_data(definition))
    elif definition.trigger_config:
        errors.append(
            {"field": "trigger_config", "message": "only 'scheduled' workflows take a config"}
        )
    if errors:
        raise InvalidDefinition(errors)
    return definition


def _foreign_trigger(definition: WorkflowDefinition) -> list[dict[str, str]]:
    """A trigger no event of the entity type fires (``on_expiring`` of a policy)."""
    allowed = ENTITY_TRIGGERS[definition.entity_type]
    if definition.trigger in allowed:
        return []
    return [
        {
            "field": "trigger",
            "message": f"no {definition.entity_type} event fires {definition.trigger!r}; "
            f"{definition.entity_type} triggers: " + ", ".join(allowed),
        }
    ]


#: Recipients relative to the entity or its event.
_RELATIVE_PEOPLE = frozenset({OWNER, INITIATOR, POLICY_OWNERS})


def _needs_entity_data(definition: WorkflowDefinition) -> list[dict[str, str]]:
    """What a ``scheduled`` workflow cannot have: a run is for an entity id alone, with
    no event and no entity data, so there is nothing to match conditions on and no
    owner or initiator to name."""
    errors = []
    if definition.conditions:
        errors.append(
            {"field": "conditions", "message": "scheduled runs carry no entity data to match"}
        )
    errors.extend(
        {
            "field": where,
            "message": f"a scheduled run has no event or entity data: name people "
            f"by user or role, not {value!r}",
        }
        for where, value in named_people(definition.steps)
        if value in _RELATIVE_PEOPLE
    )
    return errors


def _undecided_approvals(
    entity_type: str, steps: list, prefix: str = "steps", decided: str | None = None
) -> list[dict[str, str]]:
    """Moves to a status that records a person's decision (the lifecycle's
    ``decisions``: a policy's ``approved``, an assessment's ``completed``, evidence's
    ``accepted`` or ``rejected``) outside the branch of a ``require_approval`` step that
    decides it (``approve``: on_approve; ``reject``: on_reject). The workflow service
    calls the api with a service token, which the api lets make such a move only for the
    deciders it names; outside an approval there are none, and an editor could write a
    workflow that approves their own policy."""
    lifecycle = lifecycle_of(entity_type)
    decisions = lifecycle.decisions if lifecycle is not None else {}
    errors = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        where = f"{prefix}.{i}"
        # approval_change_status is what change_status becomes inside an approval's
        # branches; written by hand it is held to the same rule.
        moves_to = (
            step.get("to")
            if step.get("kind") in ("change_status", "approval_change_status")
            else None
        )
        decision = decisions.get(moves_to) if isinstance(moves_to, str) else None
        if decision is not None and decision != decided:
            branch = "on_approve" if decision == "approve" else "on_reject"
            errors.append(
                {
                    "field": f"{where}.to",
                    "message": f"moving to {step['to']!r} records a decision: put this "
                    f"step in the {branch} steps of a require_approval step",
                }
            )
        if step.get("kind") == "require_approval":
            for branch, outcome in (("on_approve", "approve"), ("on_reject", "reject")):
                nested = step.get(branch)
                if isinstance(nested, list):
                    errors.extend(
                        _undecided_approvals(entity_type, nested, f"{where}.{branch}", outcome)
                    )
    return errors


def _unknown_statuses(entity_type: str, steps: list, prefix: str = "steps") -> list[dict[str, str]]:
    """``change_status`` steps (and kinds built on it), nested ones included, whose
    ``to`` is no status of the entity type's lifecycle (:mod:`shared.lifecycles`)."""
    lifecycle = lifecycle_of(entity_type)
    errors = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        where = f"{prefix}.{i}"
        try:
            config = step_class(step.get("kind", "")).Config
        except KeyError:
            continue
        if issubclass(config, ChangeStatusConfig):
            to = step.get("to")
            if lifecycle is None:
                message = f"the api has no statuses for {entity_type} entities to move to"
                errors.append({"field": f"{where}.to", "message": message})
            elif to not in lifecycle.statuses:
                errors.append(
                    {
                        "field": f"{where}.to",
                        "message": f"{entity_type} has no status {to!r}; statuses: "
                        + ", ".join(lifecycle.statuses),
                    }
                )
        for branch in ("on_approve", "on_reject"):
            if isinstance(step.get(branch), list):
                errors.extend(_unknown_statuses(entity_type, step[branch], f"{where}.{branch}"))
    return errors


def unknown_user_errors(
    definition: WorkflowDefinition, tenant_id: str, directory: Directory
) -> list[dict[str, str]]:
    """Users the steps name (``user:<id>`` or a bare id, at any depth) that are no
    active user of the tenant's directory, unless the workflow allows unknown users. A
    tenant without directory users is not checked (its roles stay role addresses)."""
    if definition.allow_unknown_users:
        return []
    named = list(named_users(definition.steps))
    unknown = directory.unknown_users(tenant_id, [user for _, user in named]) if named else None
    return [
        {
            "field": field,
            "message": f"no user {user!r} in the directory; add them, or set "
            "allow_unknown_users: true for users created later",
        }
        for field, user in named
        if unknown and user in unknown
    ]
