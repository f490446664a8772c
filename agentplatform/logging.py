"""Log record filter and formatter: every record carries the current request id."""

from __future__ import annotations

import logging

from pythonjsonlogger import json as json_logging

from agentplatform.request_id import get_request_id


def install_record_factory() -> None:
    """Stamp ``request_id`` on every record when it is created, whichever handler later sees it.

    A handler filter (below) only decorates records on their way through that handler; records
    captured elsewhere (pytest's caplog, Sentry, a handler added later) would lack the id.
    Callers must not pass ``request_id`` in ``extra=`` (logging refuses to overwrite attributes).
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "adds_request_id", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = get_request_id() or "-"
        return record

    factory.adds_request_id = True
    logging.setLogRecordFactory(factory)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = get_request_id() or "-"
        return True


class JsonFormatter(json_logging.JsonFormatter):
    """python-json-logger's formatter with the platform's field names: one JSON object per line with
    time (UTC), level, logger, message, request id, every ``extra=`` field and the traceback."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", ["levelname", "name", "message", "request_id"])
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)
