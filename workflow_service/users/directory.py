"""Reading and writing the directory, and turning recipient specs into people.

Recipients (and approvers) are named in the grammar of
:mod:`workflow_service.steps.recipients`; here ``role:<role>`` means every active
directory user of the tenant holding the role.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import peewee

from shared.db import utcnow
from workflow_service.db import database
from workflow_service.kernel import hooks
from workflow_service.steps.recipients import (  # noqa: F401 - the one recipient grammar
    SPECIAL_RECIPIENTS,
    RecipientSpec,
    parse_recipient,
)
from workflow_service.users.models import User, UserRole


class UserNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Person:
    """A resolved recipient. ``known`` is False for ids absent from the directory."""

    user_id: str
    name: str
    email: str | None
    known: bool = True


def _person(user: User) -> Person:
    return Person(user.user_id, user.name or user.user_id, user.email)


def get_user(tenant_id: str, user_id: str) -> User | None:
    return User.get_or_none((User.tenant_id == tenant_id) & (User.user_id == user_id))


def roles_of(user: User) -> list[str]:
    return sorted(r.role for r in UserRole.select(UserRole.role).where(UserRole.user == user))


def users_with_role(tenant_id: str, role: str) -> list[User]:
    return list(
        User.select()
        .join(UserRole)
        .where((UserRole.tenant_id == tenant_id) & (UserRole.role == role) & User.active)
        .order_by(User.user_id)
    )


def resolve(
    tenant_id: str,
    specs: Iterable[str | RecipientSpec],
    *,
    owner: str | None = None,
    initiator: str | None = None,
) -> list[Person]:
    """The people ``specs`` name, each once, in the order first named.

    ``owner``/``initiator`` that are not set resolve to nobody; user ids missing from
    the directory still resolve (in-app delivery works by id) but carry no e-mail.
    """
    out: dict[str, Person] = {}

    def add_id(user_id: str | None) -> None:
        if not user_id or user_id in out:
            return
        user = get_user(tenant_id, user_id)
        if user is not None and user.active:
            out[user_id] = _person(user)
        elif user is None:
            out[user_id] = Person(user_id, user_id, None, known=False)

    for raw in specs:
        spec = raw if isinstance(raw, RecipientSpec) else parse_recipient(raw)
        if spec.kind == "user":
            add_id(spec.value)
        elif spec.kind == "owner":
            add_id(owner)
        elif spec.kind == "initiator":
            add_id(initiator)
        elif spec.kind == "role":
            # (``policy_owners`` is refused where approvals name people: it is no one here.)
            for user in users_with_role(tenant_id, spec.value):
                out.setdefault(user.user_id, _person(user))
    return list(out.values())


# ----------------------------------------------------------------------------- writes


class UserExists(Exception):
    """The user id is taken (by a concurrent create, say)."""


def save_user(
    tenant_id: str,
    user_id: str,
    *,
    name: str = "",
    email: str | None = None,
    roles: Sequence[str] = (),
    active: bool = True,
    replace: bool = True,
) -> tuple[User, bool]:
    """Create or replace a user and their roles; returns (user, created).

    With ``replace`` false an existing user is left alone: :class:`UserExists`.
    """
    with database.atomic():
        now = utcnow()
        try:
            with database.atomic():
                user = User.create(
                    tenant_id=tenant_id,
                    user_id=user_id,
                    name=name,
                    email=email,
                    active=active,
                    created_at=now,
                    updated_at=now,
                )
            created = True
        except peewee.IntegrityError:
            if not replace:
                raise UserExists(user_id) from None
            user = User.get((User.tenant_id == tenant_id) & (User.user_id == user_id))
            user.name, user.email, user.active, user.updated_at = name, email, active, now
            user.save()
            created = False
        UserRole.delete().where(UserRole.user == user).execute()
        unique_roles = sorted(set(roles))
        if unique_roles:
            UserRole.insert_many(
                [{"user": user.id, "tenant_id": tenant_id, "role": r} for r in unique_roles]
            ).execute()
        what = "created" if created else "updated"
        hooks.user_recorded(tenant_id, user_id, what, name=name, roles=unique_roles, active=active)
    return user, created


def delete_user(tenant_id: str, user_id: str) -> None:
    user = get_user(tenant_id, user_id)
    if user is None:
        raise UserNotFound(user_id)
    with database.atomic():
        UserRole.delete().where(UserRole.user == user).execute()
        user.delete_instance()
        hooks.user_recorded(tenant_id, user_id, "deleted")


def user_dict(user: User, roles: list[str] | None = None) -> dict:
    return {
        "id": user.user_id,
        "name": user.name,
        "email": user.email,
        "roles": roles_of(user) if roles is None else roles,
        "tenant": user.tenant_id,
        "active": user.active,
        "created_at": user.created_at.isoformat() + "Z",
        "updated_at": user.updated_at.isoformat() + "Z",
    }


class UserDirectory:
    """The engine's role expander, backed by this directory.

    A tenant with no directory users keeps role addresses (role-wide inbox rows), so
    the service works before anyone imports a directory.
    """

    def users_with_role(self, tenant_id: str, role: str) -> list[str] | None:
        if not User.select().where(User.tenant_id == tenant_id).exists():
            return None
        return [u.user_id for u in users_with_role(tenant_id, role)]

    def unknown_users(self, tenant_id: str, user_ids: Sequence[str]) -> set[str] | None:
        """The ids that are no active user of the tenant (None: no directory users)."""
        if not User.select().where(User.tenant_id == tenant_id).exists():
            return None
        wanted = set(user_ids)
        if not wanted:
            return set()
        known = {
            u.user_id
            for u in User.select(User.user_id).where(
                (User.tenant_id == tenant_id) & User.user_id.in_(sorted(wanted)) & User.active
            )
        }
        return wanted - known
