from django.contrib import admin

from agentplatform.models import BreakerTransition


@admin.register(BreakerTransition)
class BreakerTransitionAdmin(admin.ModelAdmin):
    """Read-only history: rows are written by the breakers, never by people."""

    list_display = ("at", "breaker", "from_state", "to_state", "storage", "last_error_short", "process")
    list_filter = ("breaker", "to_state", "storage")
    search_fields = ("breaker", "last_error", "request_id")
    date_hierarchy = "at"

    @admin.display(description="last error")
    def last_error_short(self, obj: BreakerTransition) -> str:
        return obj.last_error[:80]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser
