"""Claims of running steps kept fresh while the steps run.

A worker claims an execution by stamping ``claimed_at``; a claim older than the claim
timeout (Dramatiq's heartbeat timeout by default) is taken to belong to a dead worker,
and the next run message or sweep takes the execution over. A single step may run
longer than that (a slow webhook or api call, up to its queue's time limit), so one
thread per worker process renews the claims of the steps running in it, every third
of the timeout. A worker that dies stops renewing, and its executions are taken over
as before.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

import peewee

from shared.threads import ProcessThread

log = logging.getLogger(__name__)


class ClaimHeartbeat:
    """Renews ``claimed_at`` of the executions whose steps run in this process."""

    def __init__(
        self,
        db: peewee.Database | peewee.DatabaseProxy,
        renew: Callable[[str, int], object],
        interval_s: Callable[[], float],
    ):
        self.db = db
        self.renew = renew  # (execution id, claimed attempt)
        self.interval_s = interval_s
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread = ProcessThread(self._beat_forever, "claim-heartbeat")

    @contextlib.contextmanager
    def held(self, execution_id: str, attempt: int) -> Iterator[None]:
        """Keep the claim of ``execution_id`` (claimed as ``attempt``) fresh within."""
        with self._lock:
            self._running[execution_id] = attempt
            self._thread.ensure()
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(execution_id, None)

    def _beat_forever(self) -> None:
        while True:
            time.sleep(self.interval_s())
            with self._lock:
                claims = list(self._running.items())
            if claims:
                try:
                    with self.db.connection_context():
                        for execution_id, attempt in claims:
                            self.renew(execution_id, attempt)
                except peewee.DatabaseError as exc:
                    log.warning("could not renew %d claim(s): %s", len(claims), exc)
