"""Error answers: every error is JSON ``{"title", "description"}`` (plus detail fields).

One error class (:class:`ApiError`) carries the detail fields; one serializer writes
every ``falcon.HTTPError`` the same way; and :func:`install_error_handling` maps
validation errors, unreachable databases and Redis, and unexpected exceptions once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import falcon
import peewee
import redis
from playhouse.pool import MaxConnectionsExceeded
from pydantic import ValidationError

from shared.db import is_database_unavailable

log = logging.getLogger(__name__)


class ApiError(falcon.HTTPError):
    """An HTTP error with extra JSON fields beside title and description."""

    def __init__(self, status, title: str, description: str, /, **extra: Any):
        super().__init__(status, title=title, description=description)
        self.extra = extra


def error_body(title: str, description: str, /, **extra: Any) -> dict[str, Any]:
    return {"title": title, "description": description, **extra}


def _serialize_error(req, resp, exc: falcon.HTTPError) -> None:
    title = exc.title or str(exc.status)
    description = exc.description
    if description is None:
        if exc.status_code == 404:
            description = f"Nothing is served at {req.path}."
        elif exc.status_code == 405:
            description = f"{req.method} is not allowed on {req.path}."
        else:
            description = title
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(error_body(title, description, **getattr(exc, "extra", {})))


def _field_name(loc: Sequence[Any], prefix: str) -> str:
    parts = [str(p) for p in loc]
    name = ".".join(parts)
    if prefix:
        return f"{prefix}.{name}" if name else prefix
    return name or "body"


def validation_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field", "message"}]`` a caller can act on."""
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        errors.append({"field": _field_name(err["loc"], prefix), "message": message})
    return errors


def _handle_validation_error(req, resp, exc: ValidationError, params) -> None:
    errors = validation_errors(exc)
    described = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    raise ApiError(
        falcon.HTTP_422,
        "Invalid request body",
        f"The request body failed validation: {described}.",
        errors=errors,
    )


def _handle_unexpected(req, resp, exc: Exception, params) -> None:
    if isinstance(exc, falcon.HTTPError | falcon.HTTPStatus):
        raise exc
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(
        title="Internal server error",
        description="The server failed to handle this request; it has been logged.",
    )


def _unavailable(req, exc: Exception, what: str, description: str) -> None:
    log.error("%s unavailable on %s %s: %s", what, req.method, req.path, exc)
    raise ApiError(falcon.HTTP_503, f"{what} unavailable", description)


def _handle_database_error(req, resp, exc: Exception, params) -> None:
    """503 when the database cannot be reached now; any other database error is a bug."""
    if not is_database_unavailable(exc):
        _handle_unexpected(req, resp, exc, params)
    _unavailable(req, exc, "Database", "The database could not be reached; retry shortly.")


def _handle_redis_error(req, resp, exc: Exception, params) -> None:
    """503 when Redis cannot be reached now; refused credentials are a configuration bug."""
    if isinstance(exc, redis.AuthenticationError):
        _handle_unexpected(req, resp, exc, params)
    _unavailable(
        req,
        exc,
        "Redis",
        "The queue and job-status store (Redis) could not be reached; retry shortly.",
    )


def install_error_handling(app: falcon.App) -> None:
    """JSON errors everywhere: HTTP errors, validation errors, unexpected exceptions.

    A database or Redis that cannot be reached now is a 503 (retry later), not a 500;
    other database errors (a missing table, a timeout, a deadlock) are 500s, logged
    with their traceback.
    """
    app.set_error_serializer(_serialize_error)
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(ValidationError, _handle_validation_error)
    app.add_error_handler(peewee.DatabaseError, _handle_database_error)
    app.add_error_handler(peewee.InterfaceError, _handle_database_error)
    app.add_error_handler(MaxConnectionsExceeded, _handle_database_error)
    app.add_error_handler(redis.ConnectionError, _handle_redis_error)
    app.add_error_handler(redis.TimeoutError, _handle_redis_error)
