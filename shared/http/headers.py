"""Response headers every answer carries."""

from __future__ import annotations


class SecurityHeaders:
    """Falcon middleware: every answer says ``X-Content-Type-Options: nosniff``, and
    answers that did not choose their own caching (the console's files do) are
    ``Cache-Control: no-store``, since API answers hold tenant data.

    Put it first in the middleware list: its ``process_response`` then runs last, over
    error answers too.
    """

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header("X-Content-Type-Options", "nosniff")
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", "no-store")
