"""A background thread that each process starts for itself, on first use."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable


class ProcessThread:
    """A daemon thread running ``target``, started by :meth:`ensure` in each process.

    A thread does not survive ``fork`` (gunicorn and Dramatiq fork their workers), so
    the owner calls :meth:`ensure` wherever it hands the thread work; ``at_exit`` runs
    when the process exits (to flush what the thread had not finished).
    """

    def __init__(
        self, target: Callable[[], None], name: str, at_exit: Callable[[], object] | None = None
    ):
        self.target = target
        self.name = name
        self.at_exit = at_exit
        self.thread: threading.Thread | None = None
        self.pid = 0

    def ensure(self) -> None:
        """Start the thread unless this process runs it already (call under a lock)."""
        if self.thread is not None and self.pid == os.getpid() and self.thread.is_alive():
            return
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self.target, name=self.name, daemon=True)
        self.thread.start()
        if self.at_exit is not None:
            atexit.register(self.at_exit)

    def join(self, timeout: float) -> None:
        if self.thread is not None and self.thread.is_alive() and self.pid == os.getpid():
            self.thread.join(timeout)
