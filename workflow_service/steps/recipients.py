"""The one way steps name people: ``notify`` recipients, ``create_task`` and ``assign``
assignees, ``require_approval`` approvers and ``escalate_to``.

A recipient is one of:

* ``"user:<id>"`` or a bare ``"<id>"``: that user (the token ``sub``: 1 to 64 letters,
  digits or . _ @ + -, starting with a letter or digit);
* ``"role:<name>"``: everyone of the tenant holding that role (expanded through the
  user directory when the tenant has one, else kept as a role address);
* ``"owner"``: the person the entity is assigned to, from the trigger's entity data:
  the field :attr:`shared.lifecycles.Lifecycle.owner_field` names (a policy's
  ``owner``, an assessment's ``assessor``, evidence's ``collector``);
* ``"initiator"``: the person whose change started the chain (for a manual run, who
  asked for it);
* ``"policy_owners"``: the owners of the policies the entity is linked to, from the
  trigger's entity data ``policy_owners`` (the api computes it when it builds an
  evidence or assessment event, so no step reads the policies). Only evidence and
  assessment workflows have it, and only where several people may be named (``notify``
  recipients, a report's recipients): a policy workflow, an approver, an escalation or
  an assignee naming it is refused when the workflow is saved.

Anything else (``team:x``, ``user:``, an id with spaces) is refused when the workflow
is saved, naming the step and option.

Which options name people is read from the step's option model, not from option names:
every field whose type carries :data:`NAMES_PEOPLE` (:data:`Recipient`, :data:`Person`,
or a type built on them, alone, in a list or in a nested model) is walked, as are the
nested step lists typed :data:`workflow_service.steps.base.Steps`. A new step kind whose
option is called ``reviewers`` is checked at save like ``notify``'s ``recipients``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, Field

from shared.auth import CLAIM_ID, ROLES
from shared.lifecycles import lifecycle_of
from workflow_service.steps.base import MAX_RECIPIENTS, STEPS, StepContext, StepFailed
from workflow_service.steps.registry import step_class

OWNER = "owner"
INITIATOR = "initiator"
POLICY_OWNERS = "policy_owners"
SPECIAL_RECIPIENTS = (OWNER, INITIATOR, POLICY_OWNERS)
#: Entity types whose events carry ``policy_owners`` (those linked to policies).
POLICY_OWNERS_ENTITIES = ("assessment", "evidence")
GRAMMAR = (
    "'user:<id>' (or a bare user id), 'role:<role>', 'owner', 'initiator' or "
    "'policy_owners' (evidence and assessments)"
)


@dataclass(frozen=True)
class RecipientSpec:
    kind: str  # user | role | owner | initiator | policy_owners
    value: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind in SPECIAL_RECIPIENTS else f"{self.kind}:{self.value}"


def parse_recipient(spec: object) -> RecipientSpec:
    """Parse one recipient; ValueError naming what is wrong."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("a recipient must be a non-empty string")
    spec = spec.strip()
    if spec in SPECIAL_RECIPIENTS:
        return RecipientSpec(spec)
    kind, sep, value = spec.partition(":")
    if not sep:
        kind, value = "user", spec
    if kind == "role":
        if value not in ROLES:
            raise ValueError(f"recipient {spec!r} names an unknown role; roles: {', '.join(ROLES)}")
        return RecipientSpec("role", value)
    if kind == "user" and CLAIM_ID.fullmatch(value):
        return RecipientSpec("user", value)
    if kind == "user" and sep:
        raise ValueError(
            f"recipient {spec!r}: a user id is 1 to 64 letters, digits or . _ @ + -, "
            "starting with a letter or digit"
        )
    raise ValueError(f"recipient {spec!r} is in no known form; use {GRAMMAR}")


def check_recipient(value: str) -> str:
    """Pydantic validator: the recipient, stripped, if it is in a known form."""
    parse_recipient(value)
    return value.strip()


def check_person(value: str) -> str:
    """A recipient that is one person (``assign``): not a role."""
    kind = parse_recipient(value).kind
    if kind in ("role", POLICY_OWNERS):
        what = "a role" if kind == "role" else "several people"
        raise ValueError(f"{value!r} names {what}; name one person: user, owner or initiator")
    return value.strip()


def check_single_recipient(value: str) -> str:
    """A recipient that is stored before the run names it: one person or a role, never
    ``policy_owners`` (approvers, escalations, a task's assignee)."""
    if parse_recipient(value).kind == POLICY_OWNERS:
        raise ValueError(
            f"{value!r} is for notify recipients only; name a user, a role, owner or initiator"
        )
    return value.strip()


class _NamesPeople:
    """Marker in a type's ``Annotated`` metadata: its strings are recipients."""

    def __repr__(self) -> str:
        return "NAMES_PEOPLE"


#: Put in ``Annotated[str, ..., NAMES_PEOPLE]`` by every recipient type, so that the
#: save-time checks find the options naming people by their type.
NAMES_PEOPLE = _NamesPeople()

#: A recipient option: bounded, and checked when the workflow is saved.
Recipient = Annotated[
    str, Field(min_length=1, max_length=200), AfterValidator(check_recipient), NAMES_PEOPLE
]
#: One person (``assign``'s assignee).
Person = Annotated[
    str, Field(min_length=1, max_length=200), AfterValidator(check_person), NAMES_PEOPLE
]


def _marked(annotation: Any, marker: object) -> bool:
    """Whether an ``Annotated`` type (at any depth of ``Annotated`` nesting) carries
    ``marker``."""
    return any(m is marker for m in getattr(annotation, "__metadata__", ()))


def _walk(annotation: Any, value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """``(field, recipient)`` in ``value`` read as ``annotation``."""
    if _marked(annotation, NAMES_PEOPLE):
        if isinstance(value, str):
            yield where, value
        return
    if _marked(annotation, STEPS):
        yield from named_people(value, where)
        return
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _walk(get_args(annotation)[0], value, where)
    elif origin is Union or origin is UnionType:
        # The first member whose shape fits the value (``list[Recipient] | None``).
        for member in get_args(annotation):
            found = list(_walk(member, value, where))
            if found:
                yield from found
                return
    elif origin in (list, tuple) and isinstance(value, list):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        for index, item in enumerate(value):
            if args:
                yield from _walk(args[min(index, len(args) - 1)], item, f"{where}.{index}")
    elif (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and isinstance(value, dict)
    ):
        yield from _walk_model(annotation, value, where)


def _walk_model(model: type[BaseModel], value: dict, where: str) -> Iterator[tuple[str, Any]]:
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key not in value:
            continue
        # Metadata of a field's own ``Annotated`` is moved to the field by pydantic.
        if any(m is NAMES_PEOPLE for m in field.metadata):
            yield from _walk(Annotated[Any, NAMES_PEOPLE], value[key], f"{where}.{key}")
        elif any(m is STEPS for m in field.metadata):
            yield from named_people(value[key], f"{where}.{key}")
        else:
            yield from _walk(field.annotation, value[key], f"{where}.{key}")


def named_people(steps: Any, where: str = "steps") -> Iterator[tuple[str, Any]]:
    """``(field, recipient)`` for every recipient a list of step definitions names,
    nested steps and stages included: the options whose type (in the step kind's option
    model) carries :data:`NAMES_PEOPLE`. Steps of unknown kinds are skipped (refused by
    their own validation)."""
    if not isinstance(steps, list):
        return
    for index, step in enumerate(steps):
        kind = step.get("kind") if isinstance(step, dict) else None
        try:
            cls = step_class(kind) if isinstance(kind, str) else None
        except KeyError:
            cls = None
        if cls is not None:
            yield from _walk_model(cls.Config, step, f"{where}.{index}")


def named_users(steps: Any, where: str = "steps") -> Iterator[tuple[str, str]]:
    """``(field, user id)`` for every user a list of steps names."""
    for field, raw in named_people(steps, where):
        try:
            spec = parse_recipient(raw)
        except ValueError:
            continue  # reported by the step's own validation
        if spec.kind == "user":
            yield field, spec.value


def owner_field(entity_type: str) -> str:
    """The field of an entity type's data that names its owner (its assignee)."""
    lifecycle = lifecycle_of(entity_type)
    return lifecycle.owner_field if lifecycle is not None else OWNER


def entity_owner(entity_type: str, data: Mapping[str, Any]) -> str | None:
    """The person an entity (its event data or the api's answer) is assigned to."""
    owner = data.get(owner_field(entity_type))
    return owner if isinstance(owner, str) and owner else None


def policy_owners(data: Mapping[str, Any]) -> list[str]:
    """The owners of the policies an entity (its event data) is linked to."""
    owners = data.get(POLICY_OWNERS)
    if not isinstance(owners, list):
        return []
    return [o for o in owners if isinstance(o, str) and o]


def foreign_recipients(entity_type: str, steps: Any) -> list[dict[str, str]]:
    """The ``policy_owners`` recipients of a workflow of an entity type whose events
    carry none (a policy's): one ``{"field", "message"}`` each."""
    if entity_type in POLICY_OWNERS_ENTITIES:
        return []
    return [
        {
            "field": field,
            "message": f"{entity_type} events name no linked policies: 'policy_owners' "
            f"is for {' and '.join(POLICY_OWNERS_ENTITIES)} workflows; name a user, a "
            "role, owner or initiator",
        }
        for field, raw in named_people(steps, "steps")
        if isinstance(raw, str) and raw.strip() == POLICY_OWNERS
    ]


def person_of(recipient: str, ctx: StepContext) -> str | None:
    """The user id one person-recipient names in this run (None: nobody, e.g. an
    entity without an owner). Roles are not persons: ValueError."""
    spec = parse_recipient(recipient)
    if spec.kind == "user":
        return spec.value
    if spec.kind == OWNER:
        return entity_owner(ctx.trigger.entity_type, ctx.trigger.data)
    if spec.kind == INITIATOR:
        return ctx.trigger.initiator or None
    raise ValueError(f"{recipient!r} names a role or several people, not one person")


def nobody_as(recipient: str) -> str:
    """Why a recipient named nobody in a run (``owner``, ``initiator``,
    ``policy_owners``)."""
    kind = parse_recipient(recipient).kind
    if kind == OWNER:
        return f"{recipient!r}: the entity has no owner"
    if kind == POLICY_OWNERS:
        return f"{recipient!r}: the trigger's entity data names no policy owner"
    return f"{recipient!r}: the run has no initiator"


@dataclass(frozen=True)
class Address:
    user: str | None = None
    role: str | None = None

    @property
    def key(self) -> str:
        return f"user:{self.user}" if self.user else f"role:{self.role}"


def resolve(recipients: list[str], ctx: StepContext) -> tuple[list[Address], list[str]]:
    """The addresses, deduplicated in order, and the recipients that resolved to nobody.

    More than :data:`MAX_RECIPIENTS` addresses (a role of many people) fail the step:
    nobody is told rather than an unbounded crowd."""
    addresses: dict[str, Address] = {}
    skipped: list[str] = []
    for recipient in recipients:
        spec = parse_recipient(recipient)
        if spec.kind == "role":
            role = spec.value
            users = ctx.directory.users_with_role(ctx.execution.tenant_id, role)
            if users is None:
                addresses.setdefault(f"role:{role}", Address(role=role))
            elif not users:
                skipped.append(f"{recipient} (nobody has this role)")
            for user in users or ():
                addresses.setdefault(f"user:{user}", Address(user=user))
        elif spec.kind == POLICY_OWNERS:
            owners = policy_owners(ctx.trigger.data)
            if not owners:
                skipped.append(nobody_as(recipient))
            for user in owners:
                addresses.setdefault(f"user:{user}", Address(user=user))
        else:
            person = person_of(recipient, ctx)
            if person:
                addresses.setdefault(f"user:{person}", Address(user=person))
            else:
                skipped.append(nobody_as(recipient))
        if len(addresses) > MAX_RECIPIENTS:
            raise StepFailed(
                f"recipients: more than {MAX_RECIPIENTS} people; name fewer or a smaller role"
            )
    return list(addresses.values()), skipped
