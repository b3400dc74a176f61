"""The WSGI entry point: ``gunicorn -c deploy/gunicorn.conf.py api_service.wsgi:app``."""

from api_service.app import build_deps, create_app
from api_service.settings import ApiSettings

settings = ApiSettings.from_env()
app = create_app(settings, build_deps(settings))
