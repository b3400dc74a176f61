"""Job status: every message's life in Redis, read by both services' ``/jobs``.

* :mod:`~shared.jobstatus.store` - the records, their indexes, retention and reads.
* :mod:`~shared.jobstatus.middleware` - the Dramatiq middleware that writes them (every
  broker built by :mod:`shared.broker` carries it) and :func:`report_progress`.
* :mod:`~shared.jobstatus.views` - the public shape of a record.

States: ``queued``, ``running``, ``retrying`` (waiting for its next attempt),
``succeeded``, ``failed`` (retries exhausted or not retryable; dead-lettered).
Tree states (a job and all it started, rolled up; see the store): ``failed`` >
``retrying`` > ``waiting`` > ``running`` > ``queued`` > ``cancelled`` > ``succeeded``.
"""

from shared.jobstatus.middleware import (
    BatchWriter,
    JobStatus,
    end_execution,
    end_waiting,
    report_progress,
    report_subject,
    report_waiting,
    rewrite_waiting,
)
from shared.jobstatus.store import (
    COUNTERS,
    DURATION_BUCKETS,
    FAILED,
    QUEUED,
    RETRYING,
    RUNNING,
    STATES,
    SUCCEEDED,
    TERMINAL_STATES,
    TREE_STATES,
    InvalidCursor,
    InvalidSearch,
    JobStatusStore,
    now_ms,
)
from shared.jobstatus.views import (
    JobDetailOut,
    JobOut,
    JobPageOut,
    error_summary,
    iso,
    present,
    without_tenant_data,
)

__all__ = [
    "COUNTERS",
    "DURATION_BUCKETS",
    "FAILED",
    "QUEUED",
    "RETRYING",
    "RUNNING",
    "STATES",
    "SUCCEEDED",
    "TERMINAL_STATES",
    "TREE_STATES",
    "BatchWriter",
    "InvalidCursor",
    "InvalidSearch",
    "JobDetailOut",
    "JobOut",
    "JobPageOut",
    "JobStatus",
    "JobStatusStore",
    "end_execution",
    "end_waiting",
    "error_summary",
    "iso",
    "now_ms",
    "present",
    "report_progress",
    "report_subject",
    "report_waiting",
    "rewrite_waiting",
    "without_tenant_data",
]
