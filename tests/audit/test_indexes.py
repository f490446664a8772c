"""The audit table's indexes on PostgreSQL: each reader's query uses the index meant for it, partial
ones included, and a chain position stays unique."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction

from audit.models import AuditEvent
from audit.services import build_event
from audit.writer import insert_events

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="PostgreSQL's planner"
    ),
]


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be scanned otherwise
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def table(user_factory):
    user = user_factory()
    events = [build_event(actor=None, action="job.ran") for _ in range(50)]
    events += [
        build_event(actor=user, action="experiment.started", resource_type="experiment", resource_id=i)
        for i in range(50)
    ]
    insert_events(events)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
    return user


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"resource_type": "experiment", "resource_id": "7"}, "audit_resource_idx"),
        ({"action__startswith": "experiment."}, "audit_action_idx"),
        ({"action": "experiment.started"}, "audit_action_idx"),
        ({"chain_index__gt": 10}, "audit_chain_index_unique"),
        # The filtered page of the benchmark: actor + action + one day.
        (
            {
                "actor_label": "system",
                "action": "job.ran",
                "occurred_at__gte": datetime(2026, 1, 1, tzinfo=UTC),
                "occurred_at__lt": datetime(2026, 1, 2, tzinfo=UTC),
            },
            "audit_actor_idx",
        ),
        ({"request_id": "r-1"}, "audit_request_idx"),
        # Retention's and the statistics' time ranges: the BRIN summary, a few pages for any size.
        ({"recorded_at__lt": datetime(2026, 1, 1, tzinfo=UTC)}, "audit_recorded_brin"),
    ],
)
def test_each_filter_uses_its_index(table, filters, index):
    with transaction.atomic():
        assert index in plan(AuditEvent.objects.filter(**filters))


def test_an_agents_own_events_use_the_partial_actor_index(table):
    with transaction.atomic():
        assert "audit_actor_id_idx" in plan(AuditEvent.objects.filter(actor_id=table.pk))


def test_events_without_user_or_resource_are_left_out_of_those_indexes(table):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_expr(indpred, indrelid) FROM pg_index "
            "WHERE indrelid = 'audit_auditevent'::regclass AND indpred IS NOT NULL"
        )
        predicates = dict(cursor.fetchall())
    assert predicates["audit_actor_id_idx"] == "(actor_id IS NOT NULL)"
    assert "resource_type" in predicates["audit_resource_idx"]
    assert predicates["audit_chain_index_unique"] == "(chain_index IS NOT NULL)"


def test_the_action_has_one_index_and_it_takes_patterns(table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_auditevent'")
        definitions = dict(cursor.fetchall())
    assert "audit_action_prefix" not in definitions  # the pattern-ops twin took its name (migration 0003)
    assert "varchar_pattern_ops" in definitions["audit_action_idx"]
    assert not [name for name, sql in definitions.items() if "(action," in sql and name != "audit_action_idx"]


def test_a_chain_position_is_unique(table):
    first, second = AuditEvent.objects.order_by("id").values_list("id", flat=True)[:2]
    fill = "UPDATE audit_auditevent SET chain_index = 1, prev_hash = %s, hash = %s WHERE id = %s"
    with connection.cursor() as cursor:
        cursor.execute(fill, ["0" * 64, "a" * 64, first])
        with pytest.raises(IntegrityError), transaction.atomic():
            cursor.execute(fill, ["0" * 64, "b" * 64, second])
