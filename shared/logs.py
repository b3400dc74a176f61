"""Expected failures logged as one line; their tracebacks only at DEBUG.

Dramatiq's worker logs every exception an actor raises, other than ``Retry``, at ERROR
with its traceback, and its Retries middleware then logs the retry. For failures that
are part of normal operation and retried on their own (an unreachable database, a
webhook receiver answering 5xx) that buries real errors under tracebacks: the
:class:`ExpectedErrors` filter turns such a record into one WARNING line naming the
error, and keeps the traceback only when the logger is set to DEBUG (``dramatiq -v``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dramatiq.errors import Retry

#: The logger of Dramatiq's worker threads ("Failed to process message ...").
WORKER_LOGGER = "dramatiq.worker.WorkerThread"
_WORKER_FAILED = "Failed to process message %s with unhandled exception."


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, cut at ``limit`` characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ExpectedErrors(logging.Filter):
    """Rewrites records of expected errors (``expected(exc)`` or a ``Retry``)."""

    def __init__(self, expected: Callable[[BaseException], bool]):
        super().__init__()
        self.expected = expected

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not (isinstance(exc, Retry) or self.expected(exc)):
            return True
        if record.msg == _WORKER_FAILED:
            record.msg = "Message %s failed with an expected error, retried: %s"
            record.args = (*(record.args or ()), one_line(exc))  # type: ignore[misc]
        else:
            record.msg = f"{record.getMessage()}: {one_line(exc)}"
            record.args = ()
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_expected_errors(
    expected: Callable[[BaseException], bool], logger_name: str = WORKER_LOGGER
) -> ExpectedErrors:
    """Install :class:`ExpectedErrors` on ``logger_name`` (once per process)."""
    logger = logging.getLogger(logger_name)
    for existing in logger.filters:
        if isinstance(existing, ExpectedErrors):
            logger.removeFilter(existing)
    installed = ExpectedErrors(expected)
    logger.addFilter(installed)
    return installed
