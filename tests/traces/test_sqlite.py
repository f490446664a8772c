"""The embedded mode: the same ingest on SQLite, in a fresh process whatever database this run uses."""

from __future__ import annotations

import json

from tests.conftest import run_python

_SCRIPT = """
import json, django
django.setup()
from datetime import UTC, datetime, timedelta
from django.core.management import call_command
from django.db import connection
from django.test import Client
call_command("migrate", verbosity=0)
assert connection.vendor == "sqlite"
from accounts.models import User
from accounts.services import api_key_create
from tests.traces.conftest import export_request, span
from traces.models import Span, Trace

agent = User.objects.create_user(username="sqlite-agent", role="agent", password=None)
_key, raw = api_key_create(user=agent, name="t")
client = Client(HTTP_AUTHORIZATION=f"Api-Key {raw}")
now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
trace = "0af7651916cd43dd8448eb211c80319c"
child = span(trace=trace, span_id="00f067aa0ba902b7", parent="b7ad6b7169203331", name="chat", start=now,
             attrs={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 7})
root = span(trace=trace, span_id="b7ad6b7169203331", name="turn", start=now - timedelta(seconds=1), duration_ms=3000)
answers = []
for batch in ([child], [root], [root, child]):
    body = export_request(batch).SerializeToString()
    answers.append(client.post("/api/v1/otel/v1/traces", data=body, content_type="application/x-protobuf").status_code)
row = Trace.objects.values("span_count", "llm_calls", "input_tokens", "root_span_name", "start_time").get()
print(json.dumps({"answers": answers, "spans": Span.objects.count(), "trace": row,
                  "expected_start": (now - timedelta(seconds=1)).isoformat()}, default=str))
"""


def test_ingest_on_sqlite_stores_once_and_keeps_the_totals(tmp_path):
    result = run_python(
        _SCRIPT,
        env={
            "DJANGO_SETTINGS_MODULE": "agentplatform.settings",
            "DJANGO_ENV": "test",
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "memory://",
            "VAR_DIR": str(tmp_path),
            "SQLITE_PATH": str(tmp_path / "embedded.sqlite3"),
        },
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["answers"] == [200, 200, 200]
    assert outcome["spans"] == 2
    trace = outcome["trace"]
    assert (trace["span_count"], trace["llm_calls"], trace["input_tokens"]) == (2, 1, 7)
    assert trace["root_span_name"] == "turn"
    assert trace["start_time"].replace(" ", "T") == outcome["expected_start"]
