"""``POST /exports``: start an export of the tenant's entities; 202 with the job.

The job's result is the file's descriptor (``GET /jobs/{id}`` on either service), and
the file is served by ``GET /files/{id}``. Filters are the api's list filters, checked
here so a typo is a 422 now rather than a failed job later.
"""

from __future__ import annotations

from typing import Literal

import falcon
from pydantic import BaseModel, Field

from shared.events import EntityType
from shared.http import ApiDocs, ApiError, StrictModel, route
from workflow_service.exports.formats import EXPORTABLE
from workflow_service.exports.messages import export_message
from workflow_service.storage.jobs import accepted, submit

ROLES = ("editor", "auditor")
MAX_FILTER_CHARS = 200


class ExportRequest(StrictModel):
    entity_type: EntityType
    format: Literal["csv", "xlsx", "json"]
    filters: dict[str, str] = Field(default_factory=dict)


class JobLink(BaseModel):
    id: str
    href: str


class ExportAccepted(BaseModel):
    job: JobLink


def check_filters(entity_type: str, filters: dict[str, str]) -> dict[str, str]:
    allowed = EXPORTABLE[entity_type].filters
    unknown = sorted(set(filters) - set(allowed))
    if unknown:
        raise ApiError(
            falcon.HTTP_422,
            "Unknown filter",
            f"{entity_type} exports take the filters {', '.join(allowed)}; not "
            f"{', '.join(unknown)}.",
        )
    kept = {}
    for name, value in filters.items():
        value = value.strip()
        choices = allowed[name]
        if choices is not None and value not in choices:
            raise ApiError(
                falcon.HTTP_422,
                "Invalid filter",
                f"Filter {name} must be one of {', '.join(choices)}.",
            )
        if not value or len(value) > MAX_FILTER_CHARS or not value.isprintable():
            raise ApiError(
                falcon.HTTP_422,
                "Invalid filter",
                f"Filter {name} must be 1 to {MAX_FILTER_CHARS} printable characters.",
            )
        kept[name] = value
    return kept


class ExportCollection:
    docs = {
        "POST": route(
            "Export the tenant's entities (the api's list filters) as CSV, XLSX or JSON; "
            "the job's result names the file (GET /files/{id})",
            request=ExportRequest,
            response=ExportAccepted,
            status=202,
            errors=(400, 413, 415, 422, 503),
            roles=ROLES,
        )
    }

    def __init__(self, broker, max_body_bytes: int):
        self.broker = broker
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp):
        principal = req.context.principal
        request = req.context.body
        filters = check_filters(request.entity_type, request.filters)
        message = export_message(
            principal.tenant, principal.sub, request.entity_type, request.format, filters
        )
        accepted(resp, submit(self.broker, message))


def register(app: falcon.App, docs: ApiDocs, context) -> None:
    """Route registrar for the admin web: /exports."""
    docs.add_route(
        app, "/exports", ExportCollection(context.deps.broker, context.settings.max_body_bytes)
    )
