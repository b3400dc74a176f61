"""What can be exported; the three file writers are the kernel's
(:mod:`workflow_service.storage.tabular`), re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.lifecycles import ASSESSMENT, EVIDENCE, POLICY
from workflow_service.storage.tabular import (
    CONTENT_TYPES,
    FORMATS,
    WRITERS,
    XLSX_MAX_CELL,
    CsvWriter,
    JsonWriter,
    Utf8Out,
    Writer,
    XlsxWriter,
    cell,
)

__all__ = [
    "CONTENT_TYPES",
    "EXPORTABLE",
    "FORMATS",
    "WRITERS",
    "XLSX_MAX_CELL",
    "CsvWriter",
    "Exportable",
    "JsonWriter",
    "Utf8Out",
    "Writer",
    "XlsxWriter",
    "cell",
]


@dataclass(frozen=True)
class Exportable:
    entity_type: str
    #: The api's collection path.
    collection: str
    #: Columns of CSV and XLSX, in order (the import's columns come first, so an
    #: export of policies can be edited and imported again).
    columns: tuple[str, ...]
    #: The api's list filters, with the values each allows (None: any text).
    filters: dict[str, tuple[str, ...] | None]


EXPORTABLE: dict[str, Exportable] = {
    "policy": Exportable(
        "policy",
        "policies",
        (
            "id",
            "title",
            "policy_type",
            "content",
            "owner",
            "review_frequency",
            "next_review_date",
            "effective_date",
            "tags",
            "status",
            "version",
            "created_by",
            "created_at",
            "updated_by",
            "updated_at",
        ),
        {
            "status": POLICY.statuses,
            "policy_type": None,
            "owner": None,
            "q": None,
        },
    ),
    "assessment": Exportable(
        "assessment",
        "assessments",
        (
            "id",
            "title",
            "scope",
            "policies",
            "assessor",
            "due_date",
            "findings",
            "result",
            "status",
            "version",
            "submitted_by",
            "created_by",
            "created_at",
            "updated_by",
            "updated_at",
        ),
        {
            "status": ASSESSMENT.statuses,
            "assessor": None,
            "result": ("effective", "partially_effective", "ineffective"),
            "policy": None,
            "due_after": None,
            "due_before": None,
        },
    ),
    "evidence": Exportable(
        "evidence",
        "evidence",
        (
            "id",
            "title",
            "description",
            "kind",
            "url",
            "policies",
            "assessments",
            "collector",
            "collected_at",
            "valid_until",
            "status",
            "version",
            "file_name",
            "content_type",
            "size",
            "sha256",
            "created_by",
            "created_at",
            "updated_by",
            "updated_at",
        ),
        {
            "status": EVIDENCE.statuses,
            "collector": None,
            "kind": ("document", "screenshot", "config", "log", "link"),
            "policy": None,
            "assessment": None,
            "valid_after": None,
            "valid_before": None,
        },
    ),
}
