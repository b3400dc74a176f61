"""The WSGI entry point: ``gunicorn -c deploy/gunicorn.conf.py workflow_service.wsgi:app``."""

from workflow_service.settings import WorkflowSettings
from workflow_service.web.app import build_deps, create_app

settings = WorkflowSettings.from_env()
app = create_app(settings, build_deps(settings))
