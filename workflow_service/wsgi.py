"""The WSGI entry point: ``gunicorn -c deploy/gunicorn.conf.py workflow_service.wsgi:app``."""

from workflow_service.app import build_deps, create_app
from workflow_service.settings import WorkflowSettings

settings = WorkflowSettings.from_env()
app = create_app(settings, build_deps(settings))
