"""API shapes of the prompt registry: per endpoint, an input serializer whose ``validated_data`` is
the service's input, and an output serializer.

The input serializers check types only (strings are JSON strings without NUL, numbers are JSON
integers, unknown fields are refused); the registry's rules — key and label syntax, sizes, which
labels are protected — are the services', so the admin and the API refuse the same things in the
same words.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentplatform.query import MAX_OFFSET, QueryParameters, limit_offset_page
from agentplatform.strict_fields import StrictCharField, StrictInputSerializer, StrictIntegerField
from prompts.models import CONTENT_MAX_CHARS, MESSAGE_MAX_CHARS, PROMPT_KEY_HELP
from prompts.selectors import VERSION_MAX
from prompts.services import DESCRIPTION_MAX_CHARS, REASON_MAX_CHARS
from prompts.templating import variables_of

# Labels a request may name at once (protected labels, labels moved with a new version).
LABELS_MAX = 20
LABEL_NAME_MAX = 50


def _label_list(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=StrictCharField(max_length=LABEL_NAME_MAX), max_length=LABELS_MAX, required=False, **kwargs
    )


class IsoDateTimeField(serializers.DateTimeField):
    """``datetime.isoformat()`` (``+00:00``), as the experiments' endpoints answer."""

    def to_representation(self, value):
        return value.isoformat()


# --- prompts ------------------------------------------------------------------------------------


class PromptCreateInputSerializer(StrictInputSerializer):
    """``POST prompts/``: ``{key, description?, protected_labels?}``."""

    key = StrictCharField(max_length=100, help_text=f"The prompt type agents send: {PROMPT_KEY_HELP}")
    description = StrictCharField(required=False, allow_blank=True, max_length=DESCRIPTION_MAX_CHARS)
    protected_labels = _label_list(
        help_text="Labels only holders of prompts.move_protected_label may move (default: ['production'])."
    )


class PromptUpdateInputSerializer(StrictInputSerializer):
    """``PATCH prompts/{key}``: ``{description?, protected_labels?}`` (changing protection needs the
    permission to move protected labels)."""

    description = StrictCharField(required=False, allow_blank=True, max_length=DESCRIPTION_MAX_CHARS)
    protected_labels = _label_list()


@extend_schema_field({"type": "object", "additionalProperties": {"type": "integer"}, "example": {"production": 3}})
class LabelMapField(serializers.Field):
    """A prompt's stored labels as ``{name: version number}`` (from the prefetched ``labels``)."""

    def __init__(self, **kwargs):
        kwargs["source"] = "*"
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, prompt) -> dict[str, int]:
        return {label.name: label.version.version for label in prompt.labels.all()}


class PromptOutputSerializer(serializers.Serializer):
    """A prompt: its key, description, labels ``{name: version}``, latest version and protected labels."""

    key = serializers.CharField()
    description = serializers.CharField()
    labels = LabelMapField(help_text="Stored labels; 'latest' is implicit (latest_version).")
    latest_version = serializers.IntegerField(allow_null=True, help_text="The highest version (null: none yet).")
    version_count = serializers.IntegerField()
    protected_labels = serializers.ListField(child=serializers.CharField())
    created_at = IsoDateTimeField()
    updated_at = IsoDateTimeField()


class PromptListQuerySerializer(QueryParameters):
    search = serializers.CharField(
        required=False, max_length=100, help_text="Part of the key or the description (case-insensitive)."
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, help_text="Page size (default 100).")
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET)


PromptPageSerializer = limit_offset_page("PromptPage", PromptOutputSerializer)


# --- versions -----------------------------------------------------------------------------------


class PromptVersionCreateInputSerializer(StrictInputSerializer):
    """``POST prompts/{key}/versions``: ``{content, config?, message?, labels?}``."""

    content = StrictCharField(
        max_length=CONTENT_MAX_CHARS, help_text="The prompt text; {{name}} placeholders, no other logic."
    )
    config = serializers.DictField(
        required=False, help_text="Model settings (model, temperature, max_tokens, tools …); at most 16 KiB of JSON."
    )
    message = StrictCharField(required=False, allow_blank=True, max_length=MESSAGE_MAX_CHARS, help_text="What changed.")
    labels = _label_list(help_text="Labels moved to the new version in the same transaction.")


class PromptVersionOutputSerializer(serializers.Serializer):
    """One immutable version of a prompt."""

    key = serializers.CharField(source="prompt.key")
    version = serializers.IntegerField()
    content = serializers.CharField()
    config = serializers.DictField()
    message = serializers.CharField()
    content_hash = serializers.CharField(help_text="SHA-256 of the content and the canonical JSON of the config.")
    variables = serializers.SerializerMethodField(help_text="The {{name}} placeholders, in order of appearance.")
    labels = serializers.SerializerMethodField(help_text="The stored labels pointing at this version.")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = IsoDateTimeField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_variables(self, version) -> list[str]:
        return variables_of(version.content)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_labels(self, version) -> list[str]:
        return sorted(label.name for label in version.labels.all())


class PromptVersionListQuerySerializer(QueryParameters):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, help_text="Page size (default 20).")
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET)


PromptVersionPageSerializer = limit_offset_page("PromptVersionPage", PromptVersionOutputSerializer)


# --- labels -------------------------------------------------------------------------------------


class LabelMoveInputSerializer(StrictInputSerializer):
    """``PUT prompts/{key}/labels/{label}``: ``{version, reason?}``."""

    version = StrictIntegerField(min_value=1, max_value=VERSION_MAX, help_text="The version the label points at.")
    reason = StrictCharField(
        required=False, allow_blank=True, max_length=REASON_MAX_CHARS, help_text="Why (kept in the history)."
    )


class LabelMoveOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    version = serializers.IntegerField()
    from_version = serializers.IntegerField(allow_null=True, help_text="Where it pointed before (null: new label).")
    moved = serializers.BooleanField(help_text="False when the label already pointed at the version.")


class LabelHistoryOutputSerializer(serializers.Serializer):
    """One move of a label: ``{from, to, actor, reason, moved_at}`` (``from`` is null for a new label)."""

    to = serializers.IntegerField(source="to_version")
    actor = serializers.CharField(source="actor_label", help_text="Username, agent name or system:<job>.")
    reason = serializers.CharField()
    moved_at = IsoDateTimeField()

    def get_fields(self):
        # "from" is a Python keyword, so it cannot be declared as a class attribute.
        fields = super().get_fields()
        return {"from": serializers.IntegerField(source="from_version", allow_null=True), **fields}


class LabelHistoryQuerySerializer(QueryParameters):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, help_text="Page size (default 100).")
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET)


LabelHistoryPageSerializer = limit_offset_page("LabelHistoryPage", LabelHistoryOutputSerializer)
