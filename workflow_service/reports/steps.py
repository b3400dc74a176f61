"""``generate_report``: a workflow step that makes a report and tells people where it is.

Options: ``report`` (the report's kind; ``kind`` is the step's own), ``format``
(default csv), ``filters`` (checked against the report's kind when the workflow is
saved, a 422 naming ``steps.<i>.filters``), ``recipients`` (the grammar of
:mod:`workflow_service.steps.recipients`), ``channels`` (default in-app and e-mail)
and an optional ``subject`` (a template).

The step renders the report itself, in the execution's worker, and then runs a
``notify`` step with the download link as its branch, so the in-app and e-mail
notices go through the notification channels with their exactly-once keys. It makes
its file under a job id derived from the execution and step, so a retried execution
replaces the same file rather than adding one, and the notice always names that file.
A scheduled workflow (trigger ``scheduled``) with this step is a scheduled report.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from workflow_service.apiclient import ApiRefused, ApiUnavailable
from workflow_service.reports.definitions import FORMATS, KINDS, ReportSpec, filter_errors
from workflow_service.reports.service import produce
from workflow_service.steps.base import (
    MAX_RECIPIENTS,
    Step,
    StepConfig,
    StepContext,
    StepFailed,
    Template,
)
from workflow_service.steps.base import StepOutcome as Outcome
from workflow_service.steps.recipients import Recipient
from workflow_service.storage import FileStore

DEFAULT_CHANNELS = ("in_app", "email")


class GenerateReportConfig(StepConfig):
    #: The report's kind (``kind`` names the step's own kind in a step definition).
    report: Literal[KINDS]  # type: ignore[valid-type]
    format: Literal[FORMATS] = "csv"  # type: ignore[valid-type]
    filters: dict[str, Any] = Field(default_factory=dict)
    recipients: list[Recipient] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    channels: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=lambda: list(DEFAULT_CHANNELS), min_length=1, max_length=4
    )
    #: The notice's subject (a template, like notify's); default "Report ready: <file>".
    subject: Template = Field(default="", max_length=200)

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, channels: list[str]) -> list[str]:
        from workflow_service.steps.notify import CHANNELS

        unknown = [c for c in channels if c not in CHANNELS or c == "webhook"]
        if unknown:
            known = ", ".join(c for c in CHANNELS if c != "webhook")
            raise ValueError(f"unknown channel(s) {unknown}; channels: {known}")
        return channels

    @field_validator("filters")
    @classmethod
    def _filters_fit_the_report(cls, filters: dict, info: ValidationInfo) -> dict:
        report = info.data.get("report")
        problems = filter_errors(report, filters) if report else []
        if problems:
            raise ValueError("; ".join(f"{p['field']}: {p['message']}" for p in problems))
        return filters


class GenerateReport(Step):
    kind = "generate_report"
    Config = GenerateReportConfig
    #: Writes a file and reads the api: not inside the step's transaction.
    transactional = False

    def run(self, ctx: StepContext) -> Outcome:
        config: GenerateReportConfig = self.config  # type: ignore[assignment]
        spec = ReportSpec(kind=config.report, format=config.format, filters=config.filters)
        requested_by = ctx.trigger.initiator or f"workflow:{ctx.execution.workflow_id}"
        try:
            stored, descriptor = produce(
                spec,
                tenant=ctx.execution.tenant_id,
                requested_by=requested_by,
                job_id=ctx.message_id("report"),
                api=ctx.api,
                store=FileStore.from_settings(ctx.settings),
            )
        except ApiRefused as exc:
            raise StepFailed(f"the api refused the report's filters: {exc}") from None
        except ApiUnavailable:
            raise  # retried with the queue's backoff
        subject = config.subject or f"Report ready: {stored.name}"
        body = (
            f"The {spec.kind.replace('_', ' ')} report ({spec.format}, "
            f"{descriptor.get('rows', 0)} rows) is ready: {descriptor['href']} "
            f"(until {descriptor['expires_at']})."
        )
        notify = {
            "kind": "notify",
            "name": "report link",
            "recipients": list(config.recipients),
            "channels": list(config.channels),
            "subject": subject,
            # Only values this step made (kind, format, counts, a UUID link, a time).
            "body": body,
        }
        return Outcome.completed({"file": descriptor}, branch=[notify])
