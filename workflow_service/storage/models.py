"""The stored file table."""

from __future__ import annotations

from typing import Any

import peewee

from shared.db import utcnow
from workflow_service.db import BaseModel
from workflow_service.models import new_id


class FileKind:
    REPORT = "report"
    EXPORT = "export"
    IMPORT_REPORT = "import_report"
    AUDIT_PACKAGE = "audit_package"
    IMPORT_UPLOAD = "import_upload"
    ALL = (REPORT, EXPORT, IMPORT_REPORT, AUDIT_PACKAGE, IMPORT_UPLOAD)


#: Who may read a file of each kind (``admin`` holds every role). Viewers read
#: entities but not the batch outputs, which gather a whole tenant's data in one place;
#: imports' files are for the people who import (editors) and those who check them.
READ_ROLES: dict[str, tuple[str, ...]] = {
    FileKind.REPORT: ("editor", "approver", "auditor"),
    FileKind.EXPORT: ("editor", "approver", "auditor"),
    FileKind.IMPORT_REPORT: ("editor", "auditor"),
    FileKind.IMPORT_UPLOAD: ("editor", "auditor"),
    FileKind.AUDIT_PACKAGE: ("auditor",),
}


def readable_kinds(principal: Any) -> list[str]:
    """The kinds of file ``principal`` may read."""
    return [kind for kind, roles in READ_ROLES.items() if principal.has_role(*roles)]


def iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


class StoredFile(BaseModel):
    id = peewee.CharField(max_length=36, primary_key=True, default=new_id)
    tenant_id = peewee.CharField(max_length=64)
    kind = peewee.CharField(max_length=32)
    name = peewee.CharField(max_length=255)
    content_type = peewee.CharField(max_length=128)
    size = peewee.BigIntegerField(default=0)
    sha256 = peewee.CharField(max_length=64)
    created_by = peewee.CharField(max_length=128)
    #: The job that made it: a retried job replaces its file instead of adding one.
    job_id = peewee.CharField(max_length=64, null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField()
    #: Relative to ``FILES_DIR``.
    path = peewee.CharField(max_length=255)

    class Meta:
        table_name = "stored_file"
        indexes = (
            (("kind", "job_id"), True),
            (("tenant_id", "created_at"), False),
            (("expires_at",), False),
        )

    def descriptor(self, **counts: Any) -> dict[str, Any]:
        """The small JSON a job returns about its file (its Results backend value),
        with whatever row counts the job adds (``rows=120``)."""
        return {
            "file_id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "href": f"/files/{self.id}",
            "expires_at": iso(self.expires_at),
            **counts,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "created_by": self.created_by,
            "job_id": self.job_id,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "href": f"/files/{self.id}",
        }


FILE_MODELS = [StoredFile]
