"""Gives every request an audit buffer, written once the view and its transactions are done."""

from __future__ import annotations

from django.conf import settings

from audit.writer import audit_buffer


class AuditBufferMiddleware:
    """Collects the ``audit_log`` events of one request and writes them when it ends.

    Sits just inside ``RequestIdMiddleware`` so the request id is still set while the buffer is
    flushed, and outside the view's ``atomic`` blocks so durable events are written after those
    transactions have committed or rolled back.

    ``AUDIT_WRITE_MODE = "request"``: one INSERT at the end of the request; a failed insert (after
    retries) raises, and the request answers 503: the action's record is missing, and that must
    not pass silently. ``"background"``: the committed events are handed to the process's
    background writer (``audit/background.py``), which inserts every request's events together;
    durable events are still written before the response, and a full queue makes the request
    write its own events as in ``"request"`` mode.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with audit_buffer(handoff=settings.AUDIT_WRITE_MODE == "background"):
            return self.get_response(request)
