"""CSV exports of an experiment's exposures and results, streamed with formula cells neutralised.

Uses the platform's ``audit.exports`` helpers when present; the small fallback below has the same
signature (``stream_csv(rows, header, *, filename)``) until that module lands.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse

from experiments.models import Experiment, Exposure, Result

try:  # pragma: no cover - which branch runs depends on whether the audit app has landed
    from audit.exports import csv_safe, stream_csv
except ImportError:  # pragma: no cover
    FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")

    def csv_safe(value: Any) -> str:
        """``value`` as a cell no spreadsheet evaluates (OWASP CSV injection); numbers stay as they are."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        if hasattr(value, "isoformat"):
            return value.isoformat()
        text = str(value)
        return "'" + text if text.startswith(FORMULA_PREFIXES) else text

    class _Echo:
        def write(self, value: str) -> str:
            return value

    def _lines(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield writer.writerow([csv_safe(cell) for cell in header])
        piece: list[str] = []
        size = 0
        for row in rows:
            line = writer.writerow([csv_safe(cell) for cell in row])
            piece.append(line)
            size += len(line)
            if size >= 64 * 1024:
                yield "".join(piece)
                piece, size = [], 0
        if piece:
            yield "".join(piece)

    def stream_csv(rows_iterable, header, *, filename: str = "export.csv", **_ignored) -> StreamingHttpResponse:
        safe_name = "".join(ch for ch in filename if ch.isalnum() or ch in "._-") or "export.csv"
        response = StreamingHttpResponse(_lines(rows_iterable, header), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{safe_name}"'
        response["Cache-Control"] = "no-store"
        return response


CHUNK_ROWS = 2000
EXPOSURE_HEADER = ("experiment", "variant", "user_id", "first_seen_at")
RESULT_HEADER = (
    "event_id",
    "experiment",
    "variant",
    "user_id",
    "occurred_at",
    "success",
    "response_time_ms",
    "tokens",
    "quality_score",
    "user_feedback",
    "model",
    "recorded_at",
)


def exposures_csv(experiment: Experiment) -> StreamingHttpResponse:
    rows = (
        (experiment.key, variant_key, user_id, first_seen_at)
        for variant_key, user_id, first_seen_at in Exposure.objects.filter(experiment=experiment)
        .order_by("id")
        .values_list("variant__key", "user_id", "first_seen_at")
        .iterator(chunk_size=CHUNK_ROWS)
    )
    return stream_csv(rows, EXPOSURE_HEADER, filename=f"{experiment.key}-exposures.csv")


def results_csv(experiment: Experiment) -> StreamingHttpResponse:
    values = (
        Result.objects.filter(experiment=experiment)
        .order_by("id")
        .values_list(
            "event_id",
            "variant__key",
            "user_id",
            "occurred_at",
            "success",
            "response_time_ms",
            "tokens",
            "quality_score",
            "user_feedback",
            "model",
            "recorded_at",
        )
    )
    rows = ((row[0], experiment.key, *row[1:]) for row in values.iterator(chunk_size=CHUNK_ROWS))
    return stream_csv(rows, RESULT_HEADER, filename=f"{experiment.key}-results.csv")
