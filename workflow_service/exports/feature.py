"""The exports feature's declaration."""

from workflow_service.exports import resources
from workflow_service.exports.migrations import MIGRATIONS
from workflow_service.kernel.feature import Feature

FEATURE = Feature(
    name="exports",
    actor_modules=("workflow_service.exports.actors",),
    routes=(resources.register,),
    migrations=tuple(MIGRATIONS),
)
