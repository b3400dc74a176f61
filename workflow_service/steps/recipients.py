"""Recipients of notify, assign and create_task steps.

A recipient is ``"owner"`` (the entity's ``owner`` field in the event data),
``"role:<name>"`` (everyone with that role; expanded through the user directory when one
is configured, else kept as a role address) or ``"user:<id>"`` / a bare user id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, Field

from shared.auth import ROLES
from workflow_service.steps.base import MAX_RECIPIENTS, StepContext, StepFailed

OWNER = "owner"


@dataclass(frozen=True)
class Address:
    user: str | None = None
    role: str | None = None

    @property
    def key(self) -> str:
        return f"user:{self.user}" if self.user else f"role:{self.role}"


def check_recipient(value: str) -> str:
    """Pydantic-style validator: raise ValueError naming what is wrong."""
    value = value.strip()
    if not value:
        raise ValueError("a recipient may not be empty")
    if value.startswith("role:"):
        role = value[5:]
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    elif value.startswith("user:") and not value[5:]:
        raise ValueError("'user:' needs a user id")
    return value


#: A recipient option: bounded, and checked when the workflow is saved.
Recipient = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(check_recipient)]


def resolve(recipients: list[str], ctx: StepContext) -> tuple[list[Address], list[str]]:
    """The addresses, deduplicated in order, and the recipients that resolved to nobody.

    More than :data:`MAX_RECIPIENTS` addresses (a role of many people) fail the step:
    nobody is told rather than an unbounded crowd."""
    addresses: dict[str, Address] = {}
    skipped: list[str] = []
    for recipient in recipients:
        if recipient == OWNER:
            owner = ctx.trigger.data.get("owner")
            if isinstance(owner, str) and owner:
                addresses.setdefault(f"user:{owner}", Address(user=owner))
            else:
                skipped.append("owner (the event data has no owner)")
        elif recipient.startswith("role:"):
            role = recipient[5:]
            users = ctx.directory.users_with_role(ctx.execution.tenant_id, role)
            if users is None:
                addresses.setdefault(f"role:{role}", Address(role=role))
            elif not users:
                skipped.append(f"{recipient} (nobody has this role)")
            for user in users or ():
                addresses.setdefault(f"user:{user}", Address(user=user))
        else:
            user = recipient[5:] if recipient.startswith("user:") else recipient
            addresses.setdefault(f"user:{user}", Address(user=user))
        if len(addresses) > MAX_RECIPIENTS:
            raise StepFailed(
                f"recipients: more than {MAX_RECIPIENTS} people; name fewer or a smaller role"
            )
    return list(addresses.values()), skipped
