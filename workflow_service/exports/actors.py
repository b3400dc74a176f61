"""``export_entities`` on governance.export (3 attempts, 3-minute limit).

The message carries the tenant and the export's small JSON spec; a retry writes the
whole file again under the same job id, which replaces the first attempt's file.
"""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.middleware import CurrentMessage

from shared.broker import actor_options
from shared.db import utcnow
from workflow_service import broker as worker_broker
from workflow_service.apiclient import ApiClient, ApiRefused
from workflow_service.exports import runner
from workflow_service.exports.formats import EXPORTABLE, FORMATS
from workflow_service.exports.messages import EXPORT_ACTOR, EXPORT_QUEUE
from workflow_service.storage.store import FileStore

_api: ApiClient | None = None
_lock = threading.Lock()


class InvalidExportMessage(ValueError):
    pass


def api() -> ApiClient:
    global _api
    with _lock:
        if _api is None:
            settings = worker_broker.settings
            _api = ApiClient(
                settings.api_url, settings.service_token_secret, timeout=settings.api_timeout_s
            )
    return _api


def _valid(args: tuple, kwargs: dict) -> bool:
    if len(args) != 2 or kwargs or not isinstance(args[0], str) or not isinstance(args[1], dict):
        return False
    spec = args[1]
    return (
        spec.get("entity_type") in EXPORTABLE
        and spec.get("format") in FORMATS
        and isinstance(spec.get("filters"), dict)
        and isinstance(spec.get("requested_by"), str)
    )


def export_entities(*args, **kwargs) -> dict:
    """Write one export file; its descriptor (with the row count) is the job's result."""
    if not _valid(args, kwargs):
        raise InvalidExportMessage("an export message takes a tenant and an export spec")
    message = CurrentMessage.get_current_message()
    return runner.export(
        api(),
        FileStore.from_settings(worker_broker.settings),
        tenant=args[0],
        spec=args[1],
        job_id=message.message_id if message else "",
        today=utcnow().date(),
    )


dramatiq.actor(
    actor_name=EXPORT_ACTOR,
    throws=(InvalidExportMessage, ApiRefused),
    store_results=True,
    **actor_options(EXPORT_QUEUE),
)(export_entities)
