"""Storing exported spans and keeping their traces' totals (docs/traces.md, "Ingest").

``spans_ingest`` takes one decoded OTLP request (``export``, an ``ExportTraceServiceRequest``) of
one agent and:

1. turns each span into a row (``traces.mapping``), refusing the ones that cannot be stored (an
   invalid id, an end before the start, a start older than the retention or in the future);
2. prices the model calls with one ``PriceBook`` and links every span to its experiment with one
   ``experiment_links`` call;
3. makes sure the days' partitions exist (before the transaction: creating one locks the parent;
   ``partitions.write_with_partitions``, which re-creates a day another process dropped meanwhile);
4. in one transaction, locks the batch's traces (PostgreSQL: one advisory lock per agent and trace
   id, taken in sorted order so two batches sharing traces cannot deadlock; SQLite: the database's
   write lock, taken when the transaction begins), stores the spans once each
   (``agentplatform.ingest.ingest_rows``: the optimistic COPY, a retried batch stores nothing twice)
   and adds the spans it actually stored to their traces' totals.

Spans of a trace arrive in any order, in several batches, through several processes; the totals
are sums over stored spans, so they do not depend on that order and a duplicate adds nothing. A
trace row is filed under the UTC day of the earliest span of the batch that created it
(``Trace.day``, its partition) and keeps that day; later batches find it by agent and trace id
whatever its day.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agentplatform.ingest import FUTURE_SKEW, IngestResult, ingest_rows
from audit.services import mask_secrets
from traces import mapping, partitions
from traces.linking import LinkQuery, experiment_links
from traces.models import SpanStatus, Trace
from traces.pricing import PriceBook, Usage

SPAN_TABLE = "traces_span"
SPAN_COLUMNS = (
    "agent_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "status_message",
    "operation",
    "provider",
    "request_model",
    "response_model",
    "tool_name",
    "tool_call_id",
    "agent_name",
    "conversation_id",
    "error_type",
    "user_id",
    "prompt_type",
    "experiment_id",
    "variant_id",
    "prompt_version_id",
    "attributes",
    "content",
    "received_at",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost",
)
SPAN_KEY = ("agent_id", "trace_id", "span_id", "start_time")
TOKEN_FIELDS = mapping.COUNT_FIELDS
_TEXT_FIELDS = tuple(mapping.TEXT_LIMITS)

# OTLP's Span.SpanKind and Status.StatusCode, by number.
_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
_STATUSES = (SpanStatus.UNSET.value, SpanStatus.OK.value, SpanStatus.ERROR.value)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
# A trace lists at most this many distinct models (a pathological trace could name thousands).
MAX_MODELS_PER_TRACE = 20
# How many refusal reasons the partial-success message names.
_MESSAGE_REASONS = 5


@dataclass(slots=True)
class StoredSpan:
    """What a trace's totals need of one span."""

    trace_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    start_time: datetime
    end_time: datetime
    status: str
    model_call: bool
    model: str
    tokens: tuple[int | None, ...]
    cost: Decimal | None
    priced: bool  # a model call with usage: it has a cost, or counts as unpriced
    user_id: str
    experiment_id: int | None
    variant_id: int | None


@dataclass(slots=True)
class SpansIngestResult(IngestResult):
    """``IngestResult`` plus the partial-success message OTLP answers with."""

    traces_created: int = 0
    traces_updated: int = 0

    def message(self) -> str:
        if not self.rejected:
            return ""
        reasons = [
            f"span {rejection.index}: {next(iter(rejection.errors.values()))[0]['message']}"
            for rejection in sorted(self.rejected, key=lambda rejection: rejection.index)[:_MESSAGE_REASONS]
        ]
        more = len(self.rejected) - len(reasons)
        return f"{len(self.rejected)} span(s) rejected: " + "; ".join(reasons) + (f"; and {more} more" if more else "")


# --- attribute values -----------------------------------------------------------------------------
def _clean(text: str) -> str:
    # PostgreSQL stores no NUL in text or jsonb.
    return text.replace("\x00", "") if "\x00" in text else text


def any_value(value) -> Any:
    """An OTLP ``AnyValue`` as a JSON value (bytes as base64, non-finite doubles as text)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _clean(value.string_value)
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {_clean(item.key): any_value(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def key_values(items: Iterable) -> dict[str, Any]:
    """OTLP ``KeyValue``s as a dict (strings and integers, most attributes, without a call each)."""
    values: dict[str, Any] = {}
    for item in items:
        key = item.key
        if "\x00" in key:
            key = key.replace("\x00", "")
        value = item.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            text = value.string_value
            values[key] = text.replace("\x00", "") if "\x00" in text else text
        elif kind == "int_value":
            values[key] = value.int_value
        else:
            values[key] = any_value(value)
    return values


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Compact JSON, UTF-8 as is, NaN refused (attribute values never hold one: any_value writes it as
# text). json.dumps builds its C encoder anew on every call, half its cost for a span's few
# attributes: the encoder is made once here, as audit.services does for its details.
if c_make_encoder is not None:
    _encode_chunks = c_make_encoder(None, _not_json, encode_basestring, None, ":", ",", False, False, False)

    def _json(value: Any) -> str:
        return "".join(_encode_chunks(value, 0))

else:  # an interpreter without the C accelerator
    _json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def attributes_text(resource_text: str, resource: dict[str, Any], attributes: dict[str, Any], limit: int) -> str:
    """The JSON text of a span's kept attributes over its resource's (``resource_text``: the
    resource's, serialised once per request without its braces), capped at ``limit`` bytes."""
    if not attributes:
        text = "{" + resource_text + "}"
    elif not resource_text:
        text = _json(attributes)
    elif resource.keys() & attributes.keys():  # the span overrides a resource attribute
        return capped_attributes({**resource, **attributes}, limit)
    else:
        text = "{" + resource_text + "," + _json(attributes)[1:]
    if len(text) <= limit // 4 or len(text.encode()) <= limit:
        return text
    return capped_attributes({**resource, **attributes}, limit)


def capped_attributes(attributes: dict[str, Any], limit: int) -> str:
    """``attributes`` as JSON text of at most ``limit`` UTF-8 bytes: whole attributes are kept in
    order while they fit, and ``agentops.dropped_attributes`` counts the others."""
    text = _json(attributes)
    if len(text) <= limit // 4 or len(text.encode()) <= limit:
        return text
    kept: dict[str, Any] = {}
    size = 2 + 48  # the braces and room for the count
    for key, value in attributes.items():
        item = len(_json({key: value}).encode())  # "key":value plus braces; the comma fits in them
        if size + item > limit:
            continue
        kept[key] = value
        size += item
    kept["agentops.dropped_attributes"] = len(attributes) - len(kept)
    return _json(kept)


def capped_content(content: dict[str, Any], limit: int) -> str:
    """Masked content as JSON text of at most ``limit`` bytes (else a marker with a preview)."""
    text = _json(mask_secrets(content))
    size = len(text.encode())
    if size <= limit:
        return text
    # The preview is JSON text inside JSON: its quotes and backslashes are escaped again, so it is
    # shortened until the marker fits.
    keep = limit - 200
    while True:
        preview = text.encode()[: max(keep, 0)].decode("utf-8", "ignore")
        marker = _json({"truncated": True, "bytes": size, "preview": preview})
        if len(marker.encode()) <= limit or keep <= 0:
            return marker
        keep -= len(marker.encode()) - limit + 16


# --- the service ----------------------------------------------------------------------------------
def _time(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def _span_problem(span, *, oldest_ns: int, newest_ns: int) -> tuple[str, str] | None:
    """(field, message) of why a span cannot be stored, or None."""
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        return "trace_id", "trace_id must be 16 bytes, not all zero."
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN:
        return "span_id", "span_id must be 8 bytes, not all zero."
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "parent_span_id", "parent_span_id must be empty or 8 bytes."
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    if start < oldest_ns:
        return "start_time_unix_nano", "start is older than the retention."
    if start > newest_ns or end > newest_ns:
        return "start_time_unix_nano", "start or end is in the future."
    if end < start:
        return "end_time_unix_nano", "end is before start."
    return None


def spans_ingest(*, export, agent, now: datetime | None = None) -> SpansIngestResult:
    """Stores the spans of an ``ExportTraceServiceRequest`` exported by ``agent``; see the module."""
    now = now or timezone.now()
    result = SpansIngestResult()
    retention_start = now - timedelta(days=settings.TRACE_RETENTION_DAYS)
    oldest_ns = int((max(retention_start, datetime(2000, 1, 1, tzinfo=UTC)) - _EPOCH).total_seconds() * 1e9)
    newest_ns = int((now + FUTURE_SKEW - _EPOCH).total_seconds() * 1e9)
    user_attributes = settings.TRACE_USER_ATTRIBUTES
    store_content = settings.TRACE_STORE_CONTENT
    attributes_limit = settings.TRACE_ATTRIBUTES_MAX_BYTES
    content_limit = settings.TRACE_CONTENT_MAX_BYTES
    agent_id = agent.pk

    rows: list[list[Any]] = []
    records: list[StoredSpan] = []
    queries: list[LinkQuery] = []
    seen: set[tuple[str, str, int]] = set()
    book = PriceBook.load()
    index = -1
    for resource_spans in export.resource_spans:
        resource_attributes = key_values(resource_spans.resource.attributes)
        resource_user = mapping.resource_user(resource_attributes, user_attributes)
        resource_kept = mapping.split_resource(resource_attributes, user_attributes)
        resource_text = _json(resource_kept)[1:-1]
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                index += 1
                problem = _span_problem(span, oldest_ns=oldest_ns, newest_ns=newest_ns)
                if problem is not None:
                    result.reject(index, problem[0], "invalid", problem[1])
                    continue
                trace_id = span.trace_id.hex()
                span_id = span.span_id.hex()
                start_ns = span.start_time_unix_nano
                # Microseconds are what is stored, so the key is compared at that precision.
                key = (trace_id, span_id, start_ns // 1000)
                if key in seen:
                    result.duplicates += 1
                    continue
                seen.add(key)
                row, record, query = _span_row(
                    span,
                    trace_id=trace_id,
                    span_id=span_id,
                    agent_id=agent_id,
                    now=now,
                    book=book,
                    resource_user=resource_user,
                    resource_kept=resource_kept,
                    resource_text=resource_text,
                    user_attributes=user_attributes,
                    store_content=store_content,
                    attributes_limit=attributes_limit,
                    content_limit=content_limit,
                )
                rows.append(row)
                records.append(record)
                queries.append(query)
    if not rows:
        return result

    links = experiment_links(queries)
    experiment_at = SPAN_COLUMNS.index("experiment_id")
    for row, record, link in zip(rows, records, links, strict=True):
        if link is not None:
            row[experiment_at : experiment_at + 3] = [link.experiment_id, link.variant_id, link.prompt_version_id]
            record.experiment_id, record.variant_id = link.experiment_id, link.variant_id

    trace_keys = sorted({_lock_key(agent_id, trace_id) for trace_id in {record.trace_id for record in records}})

    def write() -> tuple[int, int, int]:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(key) FROM unnest(%s::bigint[]) AS key", [trace_keys])
            stored = ingest_rows(table=SPAN_TABLE, columns=SPAN_COLUMNS, rows=rows, conflict_key=SPAN_KEY)
            stored_records = [
                record
                for row, record in zip(rows, records, strict=True)
                if (agent_id, record.trace_id, row[2], record.start_time) in stored
            ]
            created = updated = 0
            if stored_records:
                created, updated = _add_to_traces(agent_id, stored_records, now=now)
            return len(stored_records), created, updated

    # The days' partitions are made before the transaction (creating one locks the parent table),
    # and made again should another process have dropped one this process remembered.
    days = {record.start_time.date() for record in records}
    accepted, result.traces_created, result.traces_updated = partitions.write_with_partitions(days, write)
    result.accepted = accepted
    result.duplicates += len(rows) - accepted
    return result


def _lock_key(agent_id: int, trace_id: str) -> int:
    digest = hashlib.blake2b(f"{agent_id}:{trace_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _span_row(
    span,
    *,
    trace_id: str,
    span_id: str,
    agent_id: int,
    now: datetime,
    book: PriceBook,
    resource_user: str,
    resource_kept: dict[str, Any],
    resource_text: str,
    user_attributes: tuple[str, ...],
    store_content: bool,
    attributes_limit: int,
    content_limit: int,
) -> tuple[list[Any], StoredSpan, LinkQuery]:
    attributes = key_values(span.attributes)
    mapped = mapping.map_attributes(
        attributes, resource_user=resource_user, user_attributes=user_attributes, store_content=store_content
    )
    fields = mapped.fields
    status = _STATUSES[span.status.code] if 0 <= span.status.code < 3 else SpanStatus.UNSET.value
    error_type = fields.get("error_type", "")
    content = mapped.content
    if span.events and (store_content or (status == SpanStatus.ERROR and not error_type)):
        for event in span.events:
            name = event.name
            if store_content and mapping.is_content_event(name):
                if content is None:
                    content = {}
                mapping.event_content(content, name, key_values(event.attributes))
            elif name == "exception" and status == SpanStatus.ERROR and not error_type:
                for item in event.attributes:
                    if item.key == "exception.type":
                        error_type = _clean(str(any_value(item.value)))[:200]
    start_ns = span.start_time_unix_nano
    end_ns = span.end_time_unix_nano
    start = _time(start_ns)
    end = _time(end_ns)
    operation = fields.get("operation", "")
    provider = fields.get("provider", "")
    request_model = fields.get("request_model", "")
    response_model = fields.get("response_model", "")
    model = response_model or request_model
    tokens = tuple(map(fields.get, TOKEN_FIELDS))
    has_usage = tokens[0] is not None or tokens[1] is not None
    model_call = mapping.is_model_call(operation, model, has_usage)
    cost = None
    if model_call and has_usage:
        cost = book.cost(provider=provider, model=model, when=start, usage=Usage(*tokens))
    parent = span.parent_span_id.hex() if span.parent_span_id and span.parent_span_id != _ZERO_SPAN else ""
    name = _clean(span.name)[:300]
    kind = span.kind
    row = [
        agent_id,
        trace_id,
        span_id,
        parent,
        name,
        _KINDS[kind] if 0 <= kind < 6 else "unspecified",
        start,
        end,
        (end_ns - start_ns) / 1e6,
        status,
        _clean(span.status.message)[:500],
        operation,
        provider,
        request_model,
        response_model,
        fields.get("tool_name", ""),
        fields.get("tool_call_id", ""),
        fields.get("agent_name", ""),
        fields.get("conversation_id", ""),
        error_type,
        mapped.user_id,
        mapped.link.prompt_type,
        None,
        None,
        None,
        attributes_text(resource_text, resource_kept, mapped.attributes, attributes_limit),
        capped_content(content, content_limit) if store_content and content else None,
        now,
        *tokens,
        cost,
    ]
    record = StoredSpan(
        trace_id=trace_id,
        parent_span_id=parent,
        name=name,
        start_ns=start_ns,
        end_ns=end_ns,
        start_time=start,
        end_time=end,
        status=status,
        model_call=model_call,
        model=model,
        tokens=tokens,
        cost=cost,
        priced=model_call and has_usage,
        user_id=mapped.user_id,
        experiment_id=None,
        variant_id=None,
    )
    return row, record, mapped.link


# --- trace totals ---------------------------------------------------------------------------------
_TRACE_FIELDS = (
    "user_id",
    "root_span_name",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "span_count",
    "error_count",
    "llm_calls",
    "unpriced_spans",
    "models_used",
    "experiment_id",
    "variant_id",
    "updated_at",
    *TOKEN_FIELDS,
    "cost",
)

TRACE_TABLE = "traces_trace"
TRACE_COLUMNS = ("agent_id", "trace_id", "day", *_TRACE_FIELDS)
TRACE_KEY = ("agent_id", "trace_id", "day")


def _plus(total, amount):
    if amount is None:
        return total
    return amount if total is None else total + amount


def _merge(totals: dict[str, Any], spans: Sequence[StoredSpan]) -> None:
    """Adds ``spans`` (stored for the first time) to one trace's ``totals``, in place."""
    spans = sorted(spans, key=lambda span: span.start_ns)
    start = min(span.start_time for span in spans)
    end = max(span.end_time for span in spans)
    if totals.get("start_time") is None or start < totals["start_time"]:
        totals["start_time"] = start
    if totals.get("end_time") is None or end > totals["end_time"]:
        totals["end_time"] = end
    totals["duration_ms"] = (totals["end_time"] - totals["start_time"]) / timedelta(milliseconds=1)
    totals["span_count"] = totals.get("span_count", 0) + len(spans)
    errors = sum(1 for span in spans if span.status == SpanStatus.ERROR)
    totals["error_count"] = totals.get("error_count", 0) + errors
    calls = [span for span in spans if span.model_call]
    totals["llm_calls"] = totals.get("llm_calls", 0) + len(calls)
    totals["unpriced_spans"] = totals.get("unpriced_spans", 0) + sum(
        1 for span in calls if span.priced and span.cost is None
    )
    models = list(totals.get("models_used") or [])
    for span in calls:
        if span.model and span.model not in models and len(models) < MAX_MODELS_PER_TRACE:
            models.append(span.model)
    totals["models_used"] = sorted(models)
    for position, name in enumerate(TOKEN_FIELDS):
        value = totals.get(name)
        for span in calls:
            value = _plus(value, span.tokens[position])
        totals[name] = value
    cost = totals.get("cost")
    for span in calls:
        cost = _plus(cost, span.cost)
    totals["cost"] = cost
    if not totals.get("root_span_name"):
        root = next((span for span in spans if not span.parent_span_id), None)
        if root is not None:
            totals["root_span_name"] = root.name
    if not totals.get("user_id"):
        totals["user_id"] = next((span.user_id for span in spans if span.user_id), "")
    if totals.get("experiment_id") is None:
        linked = next((span for span in spans if span.experiment_id is not None), None)
        if linked is not None:
            totals["experiment_id"], totals["variant_id"] = linked.experiment_id, linked.variant_id
    if totals["error_count"]:
        totals["status"] = SpanStatus.ERROR.value
    elif totals.get("status") != SpanStatus.OK and any(span.status == SpanStatus.OK for span in spans):
        totals["status"] = SpanStatus.OK.value
    else:
        totals.setdefault("status", SpanStatus.UNSET.value)


def _add_to_traces(agent_id: int, spans: list[StoredSpan], *, now: datetime) -> tuple[int, int]:
    """Adds newly stored spans to their traces (creating the missing ones); (created, updated).
    Call under the traces' locks."""
    by_trace: dict[str, list[StoredSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    existing: dict[str, dict[str, Any]] = {}
    # By trace id alone, the agent checked here: with the agent in the query, a partition whose
    # statistics are stale (a young day's, before autovacuum analyses it) had PostgreSQL read every
    # trace of the agent through its (agent, start) index, a batch slower with every trace stored.
    for row in (
        Trace.objects.filter(trace_id__in=list(by_trace))
        .order_by("day")
        .values("id", "day", "trace_id", "agent_id", *_TRACE_FIELDS)
    ):
        if row.pop("agent_id") == agent_id:
            existing.setdefault(row["trace_id"], row)
    created: list[list[Any]] = []
    updated: list[dict[str, Any]] = []
    for trace_id, trace_spans in by_trace.items():
        totals = existing.get(trace_id)
        if totals is None:
            totals = {"root_span_name": "", "user_id": ""}
            _merge(totals, trace_spans)
            totals["updated_at"] = now
            created.append([agent_id, trace_id, totals["start_time"].date(), *map(totals.get, _TRACE_FIELDS)])
        else:
            _merge(totals, trace_spans)
            totals["updated_at"] = now
            updated.append(totals)
    if created:
        # The same optimistic COPY as the spans (no ORM object per trace); under the traces' locks no
        # other batch can have filed one of them meanwhile, so the key never conflicts.
        ingest_rows(table=TRACE_TABLE, columns=TRACE_COLUMNS, rows=created, conflict_key=TRACE_KEY)
    if updated:
        _update_traces(updated)
    return len(created), len(updated)


def _update_traces(rows: list[dict[str, Any]]) -> None:
    """One UPDATE per trace, sent together (``executemany``: psycopg pipelines them), each by its
    id and its partition's day so PostgreSQL looks in one partition."""
    fields = [Trace._meta.get_field(name) for name in _TRACE_FIELDS]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    day_field = Trace._meta.get_field("day")
    sql = f"UPDATE {quote(Trace._meta.db_table)} SET {assignments} WHERE id = %s AND {quote('day')} = %s"  # noqa: S608
    params = [
        [field.get_db_prep_value(row[field.name], connection, prepared=False) for field in fields]
        + [row["id"], day_field.get_db_prep_value(row["day"], connection, prepared=False)]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
