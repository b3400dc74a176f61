"""Worker entry point: ``dramatiq workflow_service.worker --queues governance.policy``.

Imports the broker module first (it sets Dramatiq's global broker), then every actor
module; a worker started with ``--queues`` consumes only those queues. Refuses to start
on a database that is not migrated.
"""

from workflow_service import broker  # noqa: F401, I001 - first: sets the global broker
from workflow_service import actors  # noqa: F401

# Further actor modules register here, one import each.
from workflow_service.notifications import actors as notification_actors  # noqa: F401, E402
from workflow_service.reports import actors as report_actors  # noqa: F401, E402
from workflow_service.exports import actors as export_actors  # noqa: F401, E402
from workflow_service.imports import actors as import_actors  # noqa: F401, E402
from workflow_service.audit import actors as audit_actors  # noqa: F401, E402

from shared.db import check_current, is_database_unavailable  # noqa: E402
from shared.health import HeartbeatMiddleware  # noqa: E402
from shared.logs import quiet_expected_errors  # noqa: E402
from workflow_service.notifications.channels import TransientDeliveryError  # noqa: E402
from workflow_service.migrations import all_migrations  # noqa: E402

# Liveness: a key in Redis this host's probe (`python -m workflow_service health`) reads.
broker.broker.add_middleware(HeartbeatMiddleware())

check_current(broker.db, all_migrations())
broker.db.close()

# Retried failures that are part of normal operation (an unreachable database, a mail
# server or webhook receiver failing for now) are one log line; tracebacks at DEBUG.
quiet_expected_errors(
    lambda exc: is_database_unavailable(exc) or isinstance(exc, TransientDeliveryError)
)
