"""``/users``: the directory's admin API (admin role; rows of the caller's tenant only)."""

from __future__ import annotations

import falcon

from shared.http import ApiDocs, Param, parse_limit, route
from workflow_service.users.directory import (
    UserExists,
    delete_user,
    get_user,
    save_user,
    user_dict,
)
from workflow_service.users.models import User, UserRole
from workflow_service.users.schemas import UserCreate, UserOut, UserUpdate, check_user_id

ADMIN = ("admin",)
#: Who may read the directory: admins, and auditors reviewing who holds which role.
READERS = ("admin", "auditor")


def _not_found(user_id: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(title="User not found", description=f"No user {user_id!r}.")


class UserCollection:
    docs = {
        "GET": route(
            "List the directory's users",
            roles=READERS,
            params=(
                Param("role", description="only users holding this role"),
                Param("after", description="user id to continue after (pagination)"),
                Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 500}),
            ),
        ),
        "POST": route(
            "Create a user",
            request=UserCreate,
            response=UserOut,
            status=201,
            roles=ADMIN,
            errors=(409,),
        ),
    }

    def __init__(self, max_body_bytes: int):
        self.max_body_bytes = max_body_bytes

    def on_get(self, req, resp):
        principal = req.context.principal
        limit = parse_limit(req, default=100, maximum=500)
        query = User.select().where(User.tenant_id == principal.tenant)
        role = req.get_param("role")
        if role:
            query = query.join(UserRole).where(UserRole.role == role)
        after = req.get_param("after")
        if after:
            query = query.where(User.user_id > after)
        users = list(query.order_by(User.user_id).limit(limit + 1))
        more = len(users) > limit
        users = users[:limit]
        resp.media = {
            "items": [user_dict(u) for u in users],
            "next_after": users[-1].user_id if more else None,
        }

    def on_post(self, req, resp):
        principal = req.context.principal
        body = req.context.body
        try:
            user, _ = save_user(
                principal.tenant,
                body.id,
                name=body.name,
                email=body.email,
                roles=body.roles,
                active=body.active,
                replace=False,
            )
        except UserExists:
            raise falcon.HTTPConflict(
                title="User exists",
                description=f"User {body.id!r} already exists; PUT /users/{body.id} replaces it.",
            ) from None
        resp.status = falcon.HTTP_201
        resp.location = f"/users/{user.user_id}"
        resp.media = user_dict(user)


class UserItem:
    docs = {
        "GET": route("Get a user", response=UserOut, roles=READERS, errors=(404,)),
        "PUT": route("Create or replace a user", request=UserUpdate, response=UserOut, roles=ADMIN),
        "DELETE": route("Delete a user", status=204, roles=ADMIN, errors=(404,)),
    }

    def __init__(self, max_body_bytes: int):
        self.max_body_bytes = max_body_bytes

    def on_get(self, req, resp, user_id):
        principal = req.context.principal
        user = get_user(principal.tenant, user_id)
        if user is None:
            raise _not_found(user_id)
        resp.media = user_dict(user)

    def on_put(self, req, resp, user_id):
        principal = req.context.principal
        body = req.context.body
        try:
            check_user_id(user_id)
        except ValueError as exc:
            raise falcon.HTTPBadRequest(
                title="Invalid parameter 'user_id'", description=str(exc)
            ) from None
        user, created = save_user(
            principal.tenant,
            user_id,
            name=body.name,
            email=body.email,
            roles=body.roles,
            active=body.active,
        )
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_200
        resp.media = user_dict(user)

    def on_delete(self, req, resp, user_id):
        principal = req.context.principal
        try:
            delete_user(principal.tenant, user_id)
        except LookupError:
            raise _not_found(user_id) from None
        resp.status = falcon.HTTP_204


def add_routes(app: falcon.App, docs: ApiDocs, *, max_body_bytes: int) -> None:
    docs.add_route(app, "/users", UserCollection(max_body_bytes))
    docs.add_route(app, "/users/{user_id}", UserItem(max_body_bytes))


def register(app: falcon.App, docs: ApiDocs, context) -> None:
    """Route registrar for the admin web: /users."""
    add_routes(app, docs, max_body_bytes=context.settings.max_body_bytes)
