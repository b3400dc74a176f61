"""``/files``: a tenant's stored files, for the roles that may read each kind.

Another tenant's file is a 404 (its id tells nothing), as is a kind the caller may not
read: a 403 would confirm that the file exists.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import falcon
from pydantic import BaseModel

from shared.http import ApiDocs, Param, bad_parameter, parse_limit, route
from workflow_service.storage.models import READ_ROLES, FileKind, StoredFile, readable_kinds
from workflow_service.storage.store import FileStore
from workflow_service.web.common import after_cursor, next_cursor, page_cursor, uuid_param

#: Anyone who may read some kind of file (``admin`` holds them all).
ANY_READER = tuple(sorted({r for roles in READ_ROLES.values() for r in roles}))
CHUNK = 64 * 1024


class FileOut(BaseModel):
    id: str
    kind: str
    name: str
    content_type: str
    size: int
    sha256: str
    created_by: str
    job_id: str | None
    created_at: str
    expires_at: str
    href: str


class FilePageOut(BaseModel):
    items: list[FileOut]
    next_cursor: str | None


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback name and the UTF-8 one (RFC 6266)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _chunks(handle):
    try:
        while chunk := handle.read(CHUNK):
            yield chunk
    finally:
        handle.close()


class FileCollection:
    docs = {
        "GET": route(
            "The tenant's stored files the caller may read (newest first)",
            response=FilePageOut,
            params=(
                Param("kind", description=", ".join(FileKind.ALL)),
                Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 200}),
                Param("cursor"),
            ),
            errors=(400,),
            roles=ANY_READER,
        )
    }

    def on_get(self, req, resp):
        principal = req.context.principal
        kinds = readable_kinds(principal)
        kind = req.get_param("kind")
        if kind:
            if kind not in FileKind.ALL:
                raise bad_parameter(
                    "kind", f"'kind' must be one of {', '.join(FileKind.ALL)}; got {kind!r}."
                )
            kinds = [k for k in kinds if k == kind]
        limit = parse_limit(req)
        query = StoredFile.select().where(
            (StoredFile.tenant_id == principal.tenant) & StoredFile.kind.in_(kinds)
        )
        rows = list(after_cursor(query, StoredFile, page_cursor(req)).limit(limit))
        resp.media = {"items": [f.to_dict() for f in rows], "next_cursor": next_cursor(rows, limit)}


class FileItem:
    docs = {
        "GET": route(
            "Download a stored file (an attachment); its kind decides who may read it: "
            "reports and exports editors, approvers and auditors; import files editors "
            "and auditors; audit packages auditors; admins all",
            errors=(400, 404),
            roles=ANY_READER,
        )
    }

    def __init__(self, store: FileStore):
        self.store = store

    def on_get(self, req, resp, file_id):
        principal = req.context.principal
        file_id = uuid_param(file_id, "file_id")
        stored = self.store.get(principal.tenant, file_id)
        if stored is None or not principal.has_role(*READ_ROLES.get(stored.kind, ())):
            raise _not_found(file_id)
        try:
            handle = self.store.open(stored)
        except FileNotFoundError:
            raise _not_found(file_id) from None
        resp.content_type = stored.content_type
        resp.content_length = stored.size
        resp.set_header("Content-Disposition", content_disposition(stored.name))
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("ETag", f'"{stored.sha256}"')
        resp.set_header("Cache-Control", "private, no-store")
        resp.stream = _chunks(handle)


def _not_found(file_id: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(
        title="File not found",
        description=f"No file {file_id} that you may read in your tenant (it may have expired).",
    )


def add_routes(app: falcon.App, docs: ApiDocs, store: FileStore) -> None:
    docs.add_route(app, "/files", FileCollection())
    docs.add_route(app, "/files/{file_id}", FileItem(store))


def register(app: falcon.App, docs: ApiDocs, context) -> None:
    """Route registrar for the admin web: /files, /files/{id}."""
    add_routes(app, docs, FileStore.from_settings(context.settings))
