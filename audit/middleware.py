"""Gives every request an audit buffer, bulk-inserted once the view and its transactions are done."""

from __future__ import annotations

from audit.writer import audit_buffer


class AuditBufferMiddleware:
    """Collects the ``audit_log`` events of one request and writes them in one INSERT at its end.

    Sits just inside ``RequestIdMiddleware`` so the request id is still set while the buffer is
    flushed, and outside the view's ``atomic`` blocks so durable events are written after those
    transactions have committed or rolled back. A failed insert (after retries) raises, and the
    request answers 500: the action's record is missing, and that must not pass silently.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with audit_buffer():
            return self.get_response(request)
