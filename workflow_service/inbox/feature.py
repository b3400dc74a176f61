"""The in-app inbox's declaration."""

from workflow_service.inbox import resources
from workflow_service.kernel.feature import Feature

FEATURE = Feature(name="inbox", routes=(resources.register,))
