"""``deliver_notification`` on governance.notification: one attempt per message.

Retries follow the queue catalog (10 attempts, fixed 1 s, scaled by
RETRY_DELAY_SCALE): a transient failure is raised and Dramatiq's Retries middleware
schedules the next attempt; a permanent one is in ``throws`` and fails at once, its
answer already recorded on the delivery. A delivery whose last attempt failed
transiently is parked for a later re-send (see :mod:`.delivery`).
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage

from shared.broker import actor_options
from workflow_service import broker as worker_broker
from workflow_service.models import is_id
from workflow_service.notifications import delivery
from workflow_service.notifications.channels import PermanentDeliveryError
from workflow_service.steps import webhook_urls

OPTIONS = actor_options(delivery.NOTIFICATION_QUEUE)
# Workers validate step options again before a run: same policy as the web that saved them.
webhook_urls.configure(allow_private=worker_broker.settings.notifications.webhook_allow_private)


class InvalidDeliveryMessage(ValueError):
    pass


def deliver_notification(*args, **kwargs) -> dict:
    """Send one delivery (in-app, e-mail or webhook) unless it was sent already."""
    if len(args) != 1 or kwargs or not is_id(args[0]):
        raise InvalidDeliveryMessage("a delivery message takes one argument, a delivery id")
    message = CurrentMessage.get_current_message()
    options = message.options if message else {}
    # The message's own max_retries when set: a database outage adds attempts.
    allowed = int(options.get("max_retries", OPTIONS["max_retries"]))
    try:
        status = delivery.attempt(
            args[0],
            worker_broker.settings.notifications,
            last_attempt=int(options.get("retries", 0)) >= allowed,
        )
    except delivery.DeliveryBusy as exc:
        raise dramatiq.Retry(str(exc), delay=exc.retry_in_ms) from None
    return {"delivery_id": args[0], "status": status}


dramatiq.actor(
    actor_name=delivery.DELIVER_ACTOR,
    throws=(PermanentDeliveryError, InvalidDeliveryMessage),
    **OPTIONS,
)(deliver_notification)
