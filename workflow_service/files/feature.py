"""The file store's declaration: ``/files`` and the retention job."""

from workflow_service.files import resources
from workflow_service.files.migrations import MIGRATIONS
from workflow_service.files.retention import register_jobs
from workflow_service.kernel.feature import Feature

FEATURE = Feature(
    name="files",
    routes=(resources.register,),
    jobs=(register_jobs,),
    settings=("files_dir", "file_retention_days"),
    migrations=tuple(MIGRATIONS),
)
