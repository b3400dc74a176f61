"""``POST /reports``: ask for a report; the answer is the job that makes it."""

from __future__ import annotations

import falcon
from pydantic import BaseModel

from shared.http import ApiDocs, ApiError, route
from workflow_service.reports.definitions import FORMATS, KINDS, ReportSpec, filter_errors
from workflow_service.reports.service import REPORT_ACTOR, REPORT_QUEUE
from workflow_service.storage.jobs import accepted, job_message, new_job_id, submit

#: Who may ask for a report (``admin`` holds every role); they read reports too.
ROLES = ("editor", "approver", "auditor")


class JobRef(BaseModel):
    id: str
    href: str


class ReportAccepted(BaseModel):
    job: JobRef


class ReportCollection:
    docs = {
        "POST": route(
            f"Generate a report ({', '.join(KINDS)}) as {', '.join(FORMATS)}; follow the "
            "job: its result names the file (GET /files/{id})",
            request=ReportSpec,
            response=ReportAccepted,
            status=202,
            errors=(413, 415, 422, 503),
            roles=ROLES,
        )
    }

    def __init__(self, broker, max_body_bytes: int):
        self.broker = broker
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp):
        principal = req.context.principal
        spec = req.context.body
        problems = filter_errors(spec.kind, spec.filters)
        if problems:
            described = "; ".join(f"{e['field']}: {e['message']}" for e in problems)
            raise ApiError(
                falcon.HTTP_422,
                "Invalid report filters",
                f"The filters do not fit a {spec.kind} report: {described}.",
                errors=problems,
            )
        request = {
            "tenant": principal.tenant,
            "kind": spec.kind,
            "format": spec.format,
            "filters": spec.filters,
            "requested_by": principal.sub,
        }
        message = job_message(
            REPORT_QUEUE, REPORT_ACTOR, (request,), tenant=principal.tenant, job_id=new_job_id()
        )
        accepted(resp, submit(self.broker, message))


def register(app: falcon.App, docs: ApiDocs, context) -> None:
    """Route registrar for the admin web: POST /reports."""
    collection = ReportCollection(context.deps.broker, context.settings.max_body_bytes)
    docs.add_route(app, "/reports", collection)
