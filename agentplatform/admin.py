"""The admin parts every app shares, and the circuit-breaker history.

- ``ReadOnlyModelAdmin``: rows the platform writes (audit events, metrics, results, job runs):
  staff read them, nobody adds or changes them here; ``deletable_by`` says who may delete.
- ``CsvExportMixin``: the "Export selected rows as CSV" action, streamed in constant memory with
  formula cells neutralised (``agentplatform.exports``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from django.contrib import admin
from django.http import StreamingHttpResponse

from agentplatform.exports import stream_csv
from agentplatform.models import BreakerTransition


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Rows written by the platform, never by hand: no add, no change, not even for superusers.

    ``deletable_by``: ``"nobody"`` (append-only data: audit events, experiment results),
    ``"superusers"`` (history an operator may trim by hand) or ``"permission"`` (the model's
    delete permission, as in any admin).
    """

    deletable_by: Literal["nobody", "superusers", "permission"] = "nobody"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        if self.deletable_by == "superusers":
            return request.user.is_superuser
        if self.deletable_by == "permission":
            return super().has_delete_permission(request, obj)
        return False


class CsvExportMixin:
    """The ``export_csv`` admin action: the selected rows as a streamed, formula-safe CSV download.

    A ModelAdmin sets ``csv_columns`` (the header, and the ``values_list`` fields unless it
    overrides ``csv_rows``), ``csv_filename`` and ``csv_ordering``, and lists ``"export_csv"`` in
    ``actions`` (``CsvExportMixin`` sets that default). Hooks: ``csv_rows`` (what to write), ``csv_cells``
    (one row to its cells), ``has_csv_export_permission`` (default: may view) and ``csv_exported``
    (called before streaming, e.g. to audit the export).
    """

    actions = ["export_csv"]
    csv_columns: Sequence[str] = ()
    csv_filename = "export.csv"
    csv_ordering: Sequence[str] = ("pk",)

    def csv_rows(self, request, queryset) -> Iterable[Any]:
        return queryset.order_by(*self.csv_ordering).values_list(*self.csv_columns)

    csv_cells = None  # or a method turning one item of csv_rows into its cells

    def has_csv_export_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def csv_exported(self, request, queryset, *, scope: str) -> None:
        """Called before a download starts; ``scope`` is ``"selected"`` or the view's own name."""

    def csv_response(self, request, queryset, *, scope: str = "selected") -> StreamingHttpResponse:
        self.csv_exported(request, queryset, scope=scope)
        return stream_csv(
            self.csv_rows(request, queryset), self.csv_columns, filename=self.csv_filename, row_to_cells=self.csv_cells
        )

    @admin.action(description="Export selected %(verbose_name_plural)s as CSV", permissions=["csv_export"])
    def export_csv(self, request, queryset):
        return self.csv_response(request, queryset)


@admin.register(BreakerTransition)
class BreakerTransitionAdmin(ReadOnlyModelAdmin):
    """Read-only history: rows are written by the breakers, never by people."""

    deletable_by = "superusers"
    list_display = ("at", "breaker", "from_state", "to_state", "storage", "last_error_short", "process")
    list_filter = ("breaker", "to_state", "storage")
    search_fields = ("breaker", "last_error", "request_id")
    date_hierarchy = "at"

    @admin.display(description="last error")
    def last_error_short(self, obj: BreakerTransition) -> str:
        return obj.last_error[:80]
