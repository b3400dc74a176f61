"""The queue catalog: one entry per Dramatiq queue, as data.

Every actor takes its retries, backoff, time limit and job retention from here, so an
operator reads one table to know how a queue behaves. Bull's ``governance:policy``
becomes ``governance.policy`` because Dramatiq queue names may not contain ``:``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared import dramatiq_redis

Backoff = Literal["exponential", "fixed", "none"]

#: Dramatiq's default time limit (10 minutes), used where the catalog says "default".
DEFAULT_TIME_LIMIT_MS = 600_000


@dataclass(frozen=True)
class QueueSpec:
    name: str
    #: Total runs allowed: 1 first run + (attempts - 1) retries.
    attempts: int
    backoff: Backoff
    #: First retry delay in milliseconds (fixed: every delay; exponential: doubles from it).
    delay_ms: int
    time_limit_ms: int
    carries: str
    keep_succeeded: int = 100
    keep_failed: int = 1000

    @property
    def max_retries(self) -> int:
        return self.attempts - 1

    def retry_delay_ms(self, retry: int, scale: float = 1.0) -> int:
        """Delay before retry number ``retry`` (1 for the first retry).

        Fixed backoff waits the stated delay every time; exponential doubles from it;
        none retries at once. No jitter: the catalog is the contract operators read.
        """
        if self.backoff == "none":
            return 0
        fixed = self.backoff == "fixed"
        # Doubling stops at 2**30 (decades): a message retried through a long database
        # outage reaches retry numbers whose delay would not fit in a float.
        delay = self.delay_ms if fixed else self.delay_ms * 2 ** min(max(retry - 1, 0), 30)
        return int(delay * scale)


CATALOG: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec(
            "governance.policy",
            5,
            "exponential",
            2_000,
            DEFAULT_TIME_LIMIT_MS,
            "policy trigger dispatch and executions",
        ),
        QueueSpec(
            "governance.assessment",
            3,
            "fixed",
            5_000,
            DEFAULT_TIME_LIMIT_MS,
            "assessment triggers and executions",
        ),
        QueueSpec(
            "governance.evidence",
            5,
            "exponential",
            3_000,
            DEFAULT_TIME_LIMIT_MS,
            "evidence triggers and executions",
        ),
        QueueSpec(
            "governance.notification",
            10,
            "fixed",
            1_000,
            DEFAULT_TIME_LIMIT_MS,
            "in-app, e-mail and webhook delivery",
        ),
        QueueSpec("governance.reporting", 2, "none", 0, 5 * 60_000, "report generation"),
        QueueSpec("governance.export", 3, "none", 0, 3 * 60_000, "data exports"),
        QueueSpec(
            "governance.audit", 2, "none", 0, 10 * 60_000, "audit log append, audit packages"
        ),
        QueueSpec("governance.import", 3, "none", 0, 2 * 60_000, "bulk imports"),
    )
}

QUEUE_NAMES: tuple[str, ...] = tuple(CATALOG)

#: The queue that carries each entity type's trigger events and executions.
ENTITY_QUEUES: dict[str, str] = {
    "policy": "governance.policy",
    "assessment": "governance.assessment",
    "evidence": "governance.evidence",
}


def base_queue_name(queue_name: str) -> str:
    """A delay queue's or dead-letter queue's queue (``governance.policy.DQ`` ->
    ``governance.policy``), as Dramatiq names them (:mod:`shared.dramatiq_redis`)."""
    return dramatiq_redis.base_queue_name(queue_name)


def spec_for(queue_name: str) -> QueueSpec:
    """The catalog entry of a queue (or of its delay / dead-letter queue)."""
    try:
        return CATALOG[base_queue_name(queue_name)]
    except KeyError:
        raise KeyError(f"queue {queue_name!r} is not in the catalog") from None
