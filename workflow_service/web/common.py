"""Roles, errors and paging the admin resources share."""

from __future__ import annotations

from datetime import datetime

import falcon
import peewee

from shared.auth import ROLES
from shared.http import ApiError, decode_cursor, encode_cursor, parse_uuid
from workflow_service.definitions import InvalidDefinition

READ_ROLES = ("viewer", "editor", "approver", "auditor", "service")
WRITE_ROLES = ("editor",)


def not_found(kind: str, ident: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(
        title=f"{kind.capitalize()} not found", description=f"No {kind} {ident} in your tenant."
    )


def invalid_definition(exc: InvalidDefinition) -> ApiError:
    return ApiError(
        falcon.HTTP_422,
        "Invalid workflow",
        f"The workflow definition has problems: {exc}.",
        errors=exc.errors,
    )


def uuid_param(value: str, name: str) -> str:
    return str(parse_uuid(value, name))


def page_cursor(req):
    """(created_at, id) of the row to continue after, or None."""
    raw = req.get_param("cursor")
    if not raw:
        return None
    position = decode_cursor(raw, ("c", "i"))
    try:
        return datetime.fromisoformat(position["c"]), str(position["i"])
    except (TypeError, ValueError):
        raise _bad_cursor() from None


def _bad_cursor() -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(
        title="Invalid parameter 'cursor'",
        description="'cursor' is not a cursor returned by this API.",
    )


def after_cursor(query, model, cursor):
    """Newest first, continuing after ``cursor``."""
    if cursor is not None:
        created, ident = cursor
        if isinstance(model._meta.primary_key, peewee.AutoField):
            # An integer key: PostgreSQL refuses to compare it with other text.
            if not (ident.isascii() and ident.isdigit() and len(ident) <= 18):
                raise _bad_cursor()
            ident = int(ident)
        query = query.where(
            (model.created_at < created) | ((model.created_at == created) & (model.id < ident))
        )
    return query.order_by(model.created_at.desc(), model.id.desc())


def next_cursor(rows, limit: int) -> str | None:
    if len(rows) < limit:
        return None
    last = rows[-1]
    return encode_cursor({"c": last.created_at.isoformat(), "i": last.id})


def addressed_to(principal, tenant_column, user_column, role_column):
    """Rows of the caller's tenant addressed to the caller or to one of their roles
    (rows for a role are written when no user directory expands roles into users)."""
    roles = sorted(r for r in principal.roles if r in ROLES)
    mine = user_column == principal.sub
    if roles:
        mine = mine | role_column.in_(roles)
    return (tenant_column == principal.tenant) & mine
