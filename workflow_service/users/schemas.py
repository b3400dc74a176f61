"""Validated shapes of a directory user (API bodies and import files share them)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.addresses import MAX_EMAIL_CHARS, is_email_address
from shared.auth import CLAIM_ID, ROLES

USER_ID_RULE = (
    "A user id is the token 'sub' its person signs in with: 1 to 64 letters, digits "
    "or . _ @ + -, starting with a letter or digit."
)


def check_user_id(user_id: str) -> str:
    """``user_id`` if a token's ``sub`` can carry it (:data:`shared.auth.CLAIM_ID`), so
    no id holds control, invisible (zero-width, bidi) or look-alike characters that
    would show as another person's, or an id nobody could ever sign in as."""
    if CLAIM_ID.fullmatch(user_id):
        return user_id
    odd = next((ch for ch in user_id if not ch.isascii() or not ch.isprintable()), None)
    found = f" It holds U+{ord(odd):04X}." if odd is not None else ""
    raise ValueError(f"{USER_ID_RULE}{found}")


def _check_roles(roles: list[str]) -> list[str]:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown roles {unknown}; known roles: {', '.join(ROLES)}")
    return sorted(set(roles))


def check_email(email: str | None) -> str | None:
    """Validator: ``None`` for no address, else exactly one addr-spec."""
    if email is None or email == "":
        return None
    if not is_email_address(email):
        shown = email if len(email) <= 60 else email[:57] + "..."
        raise ValueError(
            f"{shown!r} is not one e-mail address (expected local@domain, with no name, "
            "comma or second address)"
        )
    return email


class UserFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=MAX_EMAIL_CHARS)
    roles: list[str] = Field(default_factory=list, max_length=len(ROLES))
    active: bool = True

    _roles = field_validator("roles")(_check_roles)
    _email = field_validator("email")(check_email)


class UserCreate(UserFields):
    """A new directory user; ``id`` is the JWT ``sub`` the person signs in with."""

    id: str = Field(min_length=1, max_length=64)

    _id = field_validator("id")(check_user_id)


class UserUpdate(UserFields):
    """A full replacement of a user's fields (PUT)."""


class UserRecord(UserCreate):
    """One row of an import file; ``tenant`` falls back to the command's --tenant."""

    tenant: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("roles", mode="before")
    @classmethod
    def _split_roles(cls, value):
        # CSV cells carry roles as "editor approver" or "editor;approver".
        if isinstance(value, str):
            return [r for r in re.split(r"[\s,;|]+", value) if r]
        return value


class UserOut(BaseModel):
    id: str
    name: str
    email: str | None
    roles: list[str]
    tenant: str
    active: bool
    created_at: str
    updated_at: str
