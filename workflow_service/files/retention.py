"""The retention job: files past ``expires_at`` (``FILE_RETENTION_DAYS``) are deleted."""

from __future__ import annotations

import logging

from workflow_service.db import database
from workflow_service.storage.store import FileStore

log = logging.getLogger(__name__)

#: How often the scheduler's leader deletes expired files.
PURGE_INTERVAL_S = 3600


def purge(store: FileStore) -> int:
    with database.connection_context():
        deleted = store.purge_expired()
    if deleted:
        log.info("file retention: deleted %d expired files", deleted)
    return deleted


def register_jobs(scheduler, context) -> None:
    """Scheduler registrar: hourly, on the leader only."""
    store = FileStore.from_settings(context.settings, clock=context.engine.clock)

    def run() -> None:
        if context.is_leader():
            purge(store)

    scheduler.add_job(run, "interval", seconds=PURGE_INTERVAL_S, id="file-retention")
