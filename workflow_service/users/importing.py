"""``python -m workflow_service users import FILE``: load a YAML or CSV list of users.

YAML (or JSON): a list of users, or ``{"users": [...]}``; each user has ``id``,
``name``, ``email``, ``roles`` (a list) and optionally ``tenant`` and ``active``.
CSV: a header row with those column names; ``roles`` separated by spaces or ``;``.
Users are upserted (a re-import updates names, e-mails and roles).
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import yaml
from pydantic import ValidationError

from shared.http import validation_errors
from workflow_service.db import database
from workflow_service.kernel import hooks
from workflow_service.users.directory import save_user
from workflow_service.users.schemas import UserRecord


class ImportFileError(ValueError):
    """The file cannot be read as a user list; the message names the row and field."""


def _rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImportFileError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and "users" in data:
        data = data["users"]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ImportFileError(f"{path}: expected a list of users (or a 'users' list)")
    return data


def load_records(path: Path, default_tenant: str | None) -> list[UserRecord]:
    """The file's users; with ``default_tenant`` (``--tenant``) every row that names
    another tenant is refused (all of them listed by number), so an import for one
    tenant never writes another's users."""
    records = []
    elsewhere: list[str] = []
    for number, row in enumerate(_rows(path), start=1):
        row = {k: v for k, v in row.items() if v not in ("", None) or k == "roles"}
        try:
            record = UserRecord.model_validate(row)
        except ValidationError as exc:
            described = "; ".join(f"{e['field']}: {e['message']}" for e in validation_errors(exc))
            raise ImportFileError(f"{path}: user #{number}: {described}") from None
        if not (record.tenant or default_tenant):
            raise ImportFileError(
                f"{path}: user #{number} ({record.id}) has no tenant; add one or pass --tenant"
            )
        if default_tenant and record.tenant and record.tenant != default_tenant:
            elsewhere.append(f"#{number} ({record.id}: tenant {record.tenant!r})")
        records.append(record)
    if elsewhere:
        raise ImportFileError(
            f"{path}: users {', '.join(elsewhere)} name another tenant than "
            f"--tenant {default_tenant}; nothing was imported"
        )
    return records


def import_records(records: list[UserRecord], default_tenant: str | None) -> tuple[int, int]:
    """Upsert every record in one transaction; returns (created, updated)."""
    created = updated = 0
    with database.atomic():
        for record in records:
            _, was_created = save_user(
                record.tenant or default_tenant or "",
                record.id,
                name=record.name,
                email=record.email,
                roles=record.roles,
                active=record.active,
            )
            created += was_created
            updated += not was_created
    return created, updated


def main(argv: list[str]) -> int:
    """Entry of ``python -m workflow_service users ...``; the database is already open."""
    parser = argparse.ArgumentParser(prog="python -m workflow_service users")
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import users from a YAML or CSV file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--tenant", help="tenant of rows that do not name one")
    args = parser.parse_args(argv)
    try:
        records = load_records(args.file, args.tenant)
    except (OSError, ImportFileError) as exc:
        print(f"error: {exc}")
        return 2
    hooks.acting_as(f"import:{args.file.name}")  # the audit entries' actor
    created, updated = import_records(records, args.tenant)
    print(f"imported {len(records)} users ({created} created, {updated} updated)")
    return 0
