"""Domain errors of the policy service and their one mapping to HTTP answers."""

from __future__ import annotations

import falcon

from shared.http import ApiError


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


class PolicyInReview(DomainError):
    """Its content is what the reviewers are deciding on, so it does not change."""

    status = falcon.HTTP_409
    title = "Policy in review"


class ConcurrentChange(DomainError):
    status = falcon.HTTP_409
    title = "Concurrent change"


class IdempotencyKeyReused(DomainError):
    status = falcon.HTTP_422
    title = "Idempotency key reused"


class TransitionForbidden(DomainError):
    status = falcon.HTTP_403
    title = "Forbidden"


class SeparationOfDuties(TransitionForbidden):
    title = "Separation of duties"


class ApprovalWorkflowRequired(TransitionForbidden):
    title = "Approval workflow required"


class EntityNotFound(DomainError):
    """An assessment or evidence that is not there (or is another tenant's)."""

    status = falcon.HTTP_404
    title = "Not found"

    def __init__(self, description: str, *, title: str | None = None, **extra):
        super().__init__(description, **extra)
        if title:
            self.title = title


class ContentFrozen(DomainError):
    """The content is what a decision is being made on (or was made on)."""

    status = falcon.HTTP_409
    title = "Content frozen"

    def __init__(self, description: str, *, title: str | None = None, **extra):
        super().__init__(description, **extra)
        if title:
            self.title = title


class RequirementsNotMet(DomainError):
    """A move the lifecycle allows, but the entity lacks what it needs for it."""

    status = falcon.HTTP_409
    title = "Requirements not met"


class SystemTransition(TransitionForbidden):
    """A move only the system makes (evidence expiring), never a person or workflow."""

    title = "Made by the system only"


class UnknownLinks(DomainError):
    status = falcon.HTTP_422
    title = "Unknown linked entities"


class InvalidEntity(DomainError):
    status = falcon.HTTP_422
    title = "Invalid field combination"


def handle_domain_error(req, resp, exc: DomainError, params) -> None:
    raise ApiError(exc.status, exc.title, exc.description, **exc.extra)


def install(app: falcon.App) -> None:
    app.add_error_handler(DomainError, handle_domain_error)
