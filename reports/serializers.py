from __future__ import annotations

from rest_framework import serializers

from agentplatform.query import MAX_OFFSET, QueryDateTimeField, QueryParameters
from reports.models import Report, ReportKind


class ReportListQuerySerializer(QueryParameters):
    kind = serializers.ChoiceField(choices=ReportKind.choices, required=False)
    since = QueryDateTimeField(required=False, help_text="ISO date or datetime; UTC when naive.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=200, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET, default=0)


class ReportSerializer(serializers.ModelSerializer):
    file = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = ("id", "kind", "period", "period_start", "period_end", "created_at", "updated_at", "file")

    def get_file(self, report: Report) -> str | None:
        return report.file.name or None


class ReportDetailSerializer(ReportSerializer):
    class Meta(ReportSerializer.Meta):
        fields = (*ReportSerializer.Meta.fields, "data")


class ReportPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = ReportSerializer(many=True)
