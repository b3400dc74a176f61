"""The notifications feature's declaration: e-mail and webhook channels and deliveries."""

from workflow_service.kernel.feature import Feature
from workflow_service.notifications import resources
from workflow_service.notifications.channels import TransientDeliveryError
from workflow_service.notifications.migrations import MIGRATIONS
from workflow_service.notifications.steps import CHANNELS, Webhook


def _expected_error(exc: BaseException) -> bool:
    """A mail server or webhook receiver failing for now: retried, one log line."""
    return isinstance(exc, TransientDeliveryError)


FEATURE = Feature(
    name="notifications",
    steps=(Webhook,),
    channels=CHANNELS,
    actor_modules=("workflow_service.notifications.actors",),
    routes=(resources.register,),
    settings=("notifications",),
    hooks={"expected_error": _expected_error},
    migrations=tuple(MIGRATIONS),
)
