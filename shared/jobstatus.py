"""Job status records in Redis (filled in by the job-status work).

``report_progress`` is the one call actors make; it is a no-op outside a message.
"""

from __future__ import annotations


def report_progress(percent: int, message: str = "") -> None:
    """Record the current message's progress (0-100) and a short message."""
    return None
