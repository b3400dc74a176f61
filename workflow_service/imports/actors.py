"""``import_entities`` on governance.import: one chunk of an import per message.

Retries follow the catalog (3 attempts, no backoff); each attempt resumes from the
checkpoint. A chunk that ran out of its time budget sends a continuation message for
the same import (a child job of this one) and succeeds. When a message's retries are
exhausted, ``import_failed`` marks the import failed with the last error.
"""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.middleware import CurrentMessage

from shared.broker import actor_options
from workflow_service import broker as worker_broker
from workflow_service.apiclient import ApiClient
from workflow_service.imports import runner
from workflow_service.imports.messages import (
    IMPORT_ACTOR,
    IMPORT_FAILED_ACTOR,
    IMPORT_QUEUE,
    import_message,
)
from workflow_service.imports.models import ImportJob
from workflow_service.models import is_id
from workflow_service.storage.store import FileStore

OPTIONS = actor_options(IMPORT_QUEUE)

_api: ApiClient | None = None
_lock = threading.Lock()


class InvalidImportMessage(ValueError):
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


def _continue(job: ImportJob) -> str:
    current = CurrentMessage.get_current_message()
    message = import_message(job, parent=current.message_id if current else None)
    worker_broker.broker.enqueue(message)
    return message.message_id


def import_entities(*args, **kwargs) -> dict:
    """Import (or, dry run, check) the pending rows of one import for a while."""
    if len(args) != 1 or kwargs or not is_id(args[0]):
        raise InvalidImportMessage("an import message takes one argument, an import id")
    message = CurrentMessage.get_current_message()
    settings = worker_broker.settings
    return runner.run(
        args[0],
        api=api(),
        store=FileStore.from_settings(settings),
        job_id=message.message_id if message else "",
        chunk_s=settings.batch.import_chunk_s,
        continue_with=_continue,
    )


def import_failed(message_data: dict, retry_info: dict) -> None:
    import_id = (message_data.get("args") or [None])[0]
    if is_id(import_id):
        runner.fail(import_id)  # keeps the last error the run recorded


dramatiq.actor(
    actor_name=IMPORT_ACTOR,
    throws=(InvalidImportMessage, runner.UnknownImport, runner.ImportForbidden),
    on_retry_exhausted=IMPORT_FAILED_ACTOR,
    store_results=True,
    **OPTIONS,
)(import_entities)
dramatiq.actor(actor_name=IMPORT_FAILED_ACTOR, **OPTIONS)(import_failed)
