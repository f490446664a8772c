"""CSV exports of an experiment's exposures and results, streamed with formula cells neutralised.

Uses the platform's shared ``agentplatform.exports.stream_csv``.
"""

from __future__ import annotations

from django.http import StreamingHttpResponse

from agentplatform.exports import stream_csv
from experiments.models import Experiment, Exposure, Result

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
