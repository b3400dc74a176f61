"""Domain errors of the policy service and their one mapping to HTTP answers."""

from __future__ import annotations

import logging

import falcon
import peewee

from shared.http import ApiError

log = logging.getLogger(__name__)


class DomainError(Exception):
    status = falcon.HTTP_400
    title = "Bad request"

    def __init__(self, description: str, **extra):
        super().__init__(description)
        self.description = description
        self.extra = extra


class PolicyNotFound(DomainError):
    status = falcon.HTTP_404
    title = "Policy not found"


class VersionMismatch(DomainError):
    status = falcon.HTTP_412
    title = "Stale version"


class VersionRequired(DomainError):
    status = falcon.HTTP_428
    title = "Version required"


class TransitionNotAllowed(DomainError):
    status = falcon.HTTP_409
    title = "Transition not allowed"


class ConcurrentChange(DomainError):
    status = falcon.HTTP_409
    title = "Concurrent change"


class IdempotencyKeyReused(DomainError):
    status = falcon.HTTP_422
    title = "Idempotency key reused"


class TransitionForbidden(DomainError):
    status = falcon.HTTP_403
    title = "Forbidden"


def handle_domain_error(req, resp, exc: DomainError, params) -> None:
    raise ApiError(exc.status, exc.title, exc.description, **exc.extra)


def handle_database_unavailable(req, resp, exc, params) -> None:
    log.error("database error on %s %s: %s", req.method, req.path, exc)
    raise ApiError(
        falcon.HTTP_503,
        "Database unavailable",
        "The database could not be reached; retry shortly.",
    )


def install(app: falcon.App) -> None:
    app.add_error_handler(DomainError, handle_domain_error)
    # Connection-level failures only; other database errors are bugs and stay 500s.
    app.add_error_handler(peewee.OperationalError, handle_database_unavailable)
    app.add_error_handler(peewee.InterfaceError, handle_database_unavailable)
