"""The operations console: one static page, its script and stylesheet, served from the
package (no CDN, so it works on a machine without internet access).

The page itself is public; it asks for a token once, keeps it in the browser's
``sessionStorage`` and sends it on every call to the data APIs, which check it and
decide what it shows: every tenant's jobs for an operator, its own tenant's for an admin.

Part of the operations feature (:mod:`workflow_service.ops` serves it); imports nothing
of the service.
"""

from __future__ import annotations

from importlib import resources

import falcon

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console-stats.js": "text/javascript; charset=utf-8",
    "queue-control.js": "text/javascript; charset=utf-8",
    "console-jobs.js": "text/javascript; charset=utf-8",
}
#: Third-party files the page loads, vendored under ``static/vendor/`` (see the README's
#: dependency table): uPlot draws the charts.
VENDOR = {
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}
#: Everything the page loads comes from this origin; nothing inline, nothing framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def _load() -> dict[str, bytes]:
    folder = resources.files(__name__) / "static"
    files = {name: (folder / name).read_bytes() for name in ASSETS}
    files.update({f"vendor/{name}": (folder / "vendor" / name).read_bytes() for name in VENDOR})
    return files


class ConsoleResource:
    auth_public = True

    def __init__(self) -> None:
        self.files = _load()

    def _send(self, resp, name: str) -> None:
        resp.content_type = ASSETS.get(name) or VENDOR[name.removeprefix("vendor/")]
        resp.data = self.files[name]
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.cache_control = ["no-cache"]

    def on_get(self, req, resp):
        """The operations console page (asks for an operator's or a tenant admin's token)."""
        self._send(resp, "index.html")

    def on_get_asset(self, req, resp, name):
        """A script or stylesheet of the console."""
        if name not in ASSETS or name == "index.html":
            raise falcon.HTTPNotFound(
                title="Not found", description=f"The console has no asset {name!r}."
            )
        self._send(resp, name)

    def on_get_vendor(self, req, resp, name):
        """A third-party file the console loads (the charting library)."""
        if name not in VENDOR:
            raise falcon.HTTPNotFound(
                title="Not found", description=f"The console has no vendored file {name!r}."
            )
        self._send(resp, f"vendor/{name}")


def add_console_routes(app: falcon.App, docs) -> None:
    """``/console``, ``/console/{name}`` and ``/console/vendor/{name}`` (public: the
    page asks for a token)."""
    console = ConsoleResource()
    docs.add_route(app, "/console", console)
    docs.add_route(app, "/console/{name}", console, suffix="asset")
    docs.add_route(app, "/console/vendor/{name}", console, suffix="vendor")
