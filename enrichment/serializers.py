"""Request validation for the enrichment API: every part optional, every list capped."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from agentplatform.query import QueryParameters


class _CappedList(serializers.ListField):
    """A list of at most ``ENRICHMENT_MAX_TARGETS`` items (read per request, not at import)."""

    def __init__(self, child: serializers.Field, **kwargs):
        super().__init__(child=child, required=False, **kwargs)

    def to_internal_value(self, data):
        cap = settings.ENRICHMENT_MAX_TARGETS
        if isinstance(data, list) and len(data) > cap:
            raise serializers.ValidationError(f"At most {cap} items.")
        return super().to_internal_value(data)


def _capped_list(child: serializers.Field) -> serializers.ListField:
    return _CappedList(child)


class _Url(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=2000, trim_whitespace=True, **kwargs)


class WebSpecSerializer(serializers.Serializer):
    urls = _capped_list(_Url())
    queries = _capped_list(serializers.CharField(max_length=500))


class YoutubeSpecSerializer(serializers.Serializer):
    videos = _capped_list(serializers.CharField(max_length=500))


class CrawlSpecSerializer(serializers.Serializer):
    url = _Url()
    limit = serializers.IntegerField(min_value=1, required=False, default=10)

    def validate_limit(self, value: int) -> int:
        if value > settings.ENRICHMENT_CRAWL_MAX_PAGES:
            raise serializers.ValidationError(f"At most {settings.ENRICHMENT_CRAWL_MAX_PAGES} pages.")
        return value


class SupadataSpecSerializer(serializers.Serializer):
    scrape = _capped_list(_Url())
    map = _capped_list(_Url())
    crawl = _capped_list(CrawlSpecSerializer())


class McpCallSerializer(serializers.Serializer):
    server = serializers.CharField(max_length=100)
    tool = serializers.CharField(max_length=200)
    arguments = serializers.DictField(required=False, default=dict)


class ContextRequestSerializer(serializers.Serializer):
    web = WebSpecSerializer(required=False)
    youtube = YoutubeSpecSerializer(required=False)
    supadata = SupadataSpecSerializer(required=False)
    mcp = _capped_list(McpCallSerializer())
    deadline_ms = serializers.IntegerField(required=False, min_value=1)

    def validate_deadline_ms(self, value: int) -> int:
        if value > settings.ENRICHMENT_MAX_DEADLINE_MS:
            raise serializers.ValidationError(f"At most {settings.ENRICHMENT_MAX_DEADLINE_MS} ms.")
        return value


class DocumentSearchQuerySerializer(QueryParameters):
    q = serializers.CharField(max_length=300)
    source = serializers.CharField(max_length=100, required=False, help_text="A data source's name.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=20)


class DocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField(source="source.name")
    url = serializers.CharField()
    title = serializers.CharField()
    snippet = serializers.CharField()
    fetched_at = serializers.DateTimeField()
    rank = serializers.FloatField(allow_null=True)


# --- response shapes (documentation: the service builds plain dicts) ------------------------------


class _Marks(serializers.Serializer):
    provider = serializers.CharField(help_text="Which provider served it (e.g. search.fallback).")
    cached = serializers.BooleanField(help_text="Served from the shared cache.")


class EnrichmentSnippetSerializer(_Marks):
    source = serializers.ChoiceField(choices=["web", "search"])
    url = serializers.CharField()
    title = serializers.CharField()
    text = serializers.CharField()
    query = serializers.CharField(required=False, help_text="For search results: the normalised query.")


class EnrichmentInsightSerializer(_Marks):
    video = serializers.CharField()
    lang = serializers.CharField()
    text = serializers.CharField()


class EnrichmentPageSerializer(serializers.Serializer):
    url = serializers.CharField()
    title = serializers.CharField()
    text = serializers.CharField()


class EnrichmentScrapeSerializer(EnrichmentPageSerializer, _Marks):
    pass


class EnrichmentMapSerializer(_Marks):
    url = serializers.CharField()
    urls = serializers.ListField(child=serializers.CharField())


class EnrichmentCrawlSerializer(_Marks):
    url = serializers.CharField()
    job_id = serializers.CharField()
    status = serializers.CharField()
    pages = EnrichmentPageSerializer(many=True)
    truncated = serializers.BooleanField()


class EnrichmentSupadataSerializer(serializers.Serializer):
    scrape = EnrichmentScrapeSerializer(many=True)
    map = EnrichmentMapSerializer(many=True)
    crawl = EnrichmentCrawlSerializer(many=True)


class EnrichmentMcpResultSerializer(_Marks):
    server = serializers.CharField()
    tool = serializers.CharField()
    content = serializers.ListField(child=serializers.DictField())
    structured_content = serializers.DictField(allow_null=True)
    is_error = serializers.BooleanField()


class EnrichmentErrorSerializer(serializers.Serializer):
    source = serializers.CharField()
    target = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()
    transient = serializers.BooleanField()
    retry_after = serializers.FloatField(required=False)


class ContextResponseSerializer(serializers.Serializer):
    external_snippets = EnrichmentSnippetSerializer(many=True)
    youtube_insights = EnrichmentInsightSerializer(many=True)
    supadata = EnrichmentSupadataSerializer()
    mcp = EnrichmentMcpResultSerializer(many=True)
    errors = EnrichmentErrorSerializer(many=True)
    partial = serializers.BooleanField()
    elapsed_ms = serializers.FloatField()
