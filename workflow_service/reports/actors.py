"""``generate_report`` on governance.reporting: one report request -> one stored file.

The message carries the request as small JSON (``tenant``, ``kind``, ``format``,
``filters``, ``requested_by``); the job id is the message id, so a retry (the queue
allows one) replaces the file the first attempt may have stored. The return value,
kept by Dramatiq's Results backend for ``FILE_RETENTION_DAYS``, is the file's
descriptor, which ``/jobs/{id}`` on both services shows.
"""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.middleware import CurrentMessage
from pydantic import ValidationError

from shared.broker import actor_options
from workflow_service import broker as worker_broker
from workflow_service.apiclient import ApiClient, ApiRefused
from workflow_service.reports.definitions import ReportSpec, filter_errors
from workflow_service.reports.service import REPORT_ACTOR, REPORT_QUEUE, produce
from workflow_service.storage import FileStore

_api: ApiClient | None = None
_lock = threading.Lock()


class InvalidReportRequest(ValueError):
    """A message no retry can make valid."""


def api_client() -> ApiClient:
    global _api
    if _api is None:
        with _lock:
            if _api is None:
                settings = worker_broker.settings
                _api = ApiClient(
                    settings.api_url,
                    settings.service_token_secret,
                    timeout=settings.api_timeout_s,
                )
    return _api


def parse_request(request: object) -> tuple[ReportSpec, str, str]:
    if not isinstance(request, dict):
        raise InvalidReportRequest("a report message takes one object")
    tenant, requested_by = request.get("tenant"), request.get("requested_by")
    if not isinstance(tenant, str) or not tenant or not isinstance(requested_by, str):
        raise InvalidReportRequest("a report message names its tenant and requester")
    try:
        spec = ReportSpec.model_validate(
            {k: request.get(k) for k in ("kind", "format", "filters") if k in request}
        )
    except ValidationError as exc:
        raise InvalidReportRequest(f"invalid report request: {exc}") from None
    problems = filter_errors(spec.kind, spec.filters)
    if problems:
        raise InvalidReportRequest(f"invalid report filters: {problems}")
    return spec, tenant, requested_by


def generate_report(request: dict) -> dict:
    spec, tenant, requested_by = parse_request(request)
    message = CurrentMessage.get_current_message()
    job_id = message.message_id if message is not None else None
    try:
        _, descriptor = produce(
            spec,
            tenant=tenant,
            requested_by=requested_by,
            job_id=job_id,
            api=api_client(),
            store=FileStore.from_settings(worker_broker.settings),
        )
    except ApiRefused as exc:
        raise InvalidReportRequest(str(exc)) from None
    return descriptor


dramatiq.actor(
    actor_name=REPORT_ACTOR,
    throws=(InvalidReportRequest,),
    store_results=True,
    result_ttl=worker_broker.settings.file_retention_days * 86_400_000,
    **actor_options(REPORT_QUEUE),
)(generate_report)
