"""Batch jobs as HTTP answers: ``202 {"job": {"id", "href"}}``.

A batch feature (reports, exports, imports, audit packages) builds its message with
:func:`job_message` under a job id it knows before sending (:func:`new_job_id`, or one
derived from its own row), sends it with :func:`submit`, and answers with
:func:`accepted`. The job's record, written as the message is enqueued, names the
caller's tenant, so ``/jobs/{id}`` on both services shows it to the tenant only, with
the actor's return value (the file's descriptor) once it has succeeded.
"""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq
import falcon
import redis

from shared.http import ApiError


def new_job_id() -> str:
    return str(uuid.uuid4())


def job_message(
    queue_name: str,
    actor_name: str,
    args: tuple | list,
    *,
    tenant: str,
    job_id: str | None = None,
    parent_job_id: str | None = None,
) -> dramatiq.Message:
    """The message of a batch job of ``tenant``; its id is the job's id."""
    options: dict[str, Any] = {"tenant_id": tenant}
    if parent_job_id:
        options["parent_job_id"] = parent_job_id
    return dramatiq.Message(
        queue_name=queue_name,
        actor_name=actor_name,
        args=tuple(args),
        kwargs={},
        options=options,
        message_id=job_id or new_job_id(),
    )


def job_ref(job_id: str) -> dict[str, str]:
    return {"id": job_id, "href": f"/jobs/{job_id}"}


def submit(broker: Any, message: dramatiq.Message) -> dict[str, str]:
    """Send ``message``; ``{"id", "href"}`` of its job. Redis down is a 503."""
    try:
        broker.enqueue(message)
    except (redis.RedisError, dramatiq.errors.BrokerConnectionError) as exc:
        raise ApiError(
            falcon.HTTP_503,
            "Queue unavailable",
            "The job could not be queued (Redis cannot be reached); nothing was started, "
            "send the request again shortly.",
        ) from exc
    return job_ref(message.message_id)


def accepted(resp: falcon.Response, job: dict[str, str]) -> None:
    """Answer 202 with the job to follow."""
    resp.status = falcon.HTTP_202
    resp.set_header("Location", job["href"])
    resp.media = {"job": job}
