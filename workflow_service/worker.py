"""Worker entry point: ``dramatiq workflow_service.worker --queues governance.policy``.

Imports the broker module first (it sets Dramatiq's global broker), then every actor
module; a worker started with ``--queues`` consumes only those queues. Refuses to start
on a database that is not migrated.
"""

from workflow_service import broker  # noqa: F401, I001 - first: sets the global broker
from workflow_service import actors  # noqa: F401

# Further actor modules register here, one import each.
from workflow_service.notifications import actors as notification_actors  # noqa: F401, E402

from shared.db import check_current  # noqa: E402
from workflow_service.migrations import all_migrations  # noqa: E402

check_current(broker.db, all_migrations())
broker.db.close()
