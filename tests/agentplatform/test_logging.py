import json
import logging
import sys

from agentplatform.logging import JsonFormatter, RequestIdFilter
from agentplatform.request_id import reset_request_id, set_request_id


def _record(message: str, **extra) -> logging.LogRecord:
    record = logging.LogRecord("agentplatform.test", logging.WARNING, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_the_current_request_id_and_extras():
    token = set_request_id("req-42")
    try:
        record = _record("user %s", job="audit_seal")
        record.args = ("alice",)
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        reset_request_id(token)
    assert line["message"] == "user alice"
    assert line["request_id"] == "req-42"
    assert line["level"] == "WARNING"
    assert line["job"] == "audit_seal"


def test_records_outside_a_request_get_a_placeholder_id():
    record = _record("boot")
    RequestIdFilter().filter(record)
    assert record.request_id == "-"


def test_newlines_in_messages_stay_inside_one_json_line():
    line = JsonFormatter().format(_record("first\nInjected: line"))
    assert "\n" not in line
    assert json.loads(line)["message"] == "first\nInjected: line"


def test_json_lines_carry_the_utc_time_the_logger_and_the_traceback():
    record = _record("failed")
    record.created = 0.25
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["time"].startswith("1970-01-01T00:00:00.25") and line["time"].endswith("+00:00")
    assert line["logger"] == "agentplatform.test"
    assert "ValueError: boom" in line["exc_info"]
