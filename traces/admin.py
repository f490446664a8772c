"""Traces, prices and reprice runs in the admin.

- **Traces**: a list built for tens of millions of rows (no ``COUNT(*)``: ``show_full_result_count
  = False``, no facets, a paginator counting only a few pages ahead; filters whose choices come from small
  tables or from the partition list, never ``SELECT DISTINCT`` over the spans), searched by trace
  id, and a trace page drawn as a waterfall (``traces/trace_waterfall.html``): the span tree with a
  bar per span on the trace's time axis, each span's operation, model, tokens, cost, status and
  stored messages. Bars are SVG rectangles positioned by attributes, so the page needs no inline
  style or script (CSP).
- **Model prices**: admins edit through the audited services; analysts and operators read. After a
  change, and from each price's page, "Reprice spans since <date>" files a reprice job (with a
  confirmation form). "Unpriced models" lists the models of recent spans no price matched.
- **Reprice jobs**: read-only, with their progress.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, partial

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from agentplatform.admin import ReadOnlyModelAdmin
from agentplatform.errors import Conflict
from traces import partitions, selectors, services
from traces.models import ModelPrice, RepriceJob, SpanStatus, Trace
from traces.reprice import spans_reprice
from traces.serializers import model_pattern_problem

# Bar geometry of the waterfall: the time axis is drawn in thousandths of the trace's duration.
AXIS_UNITS = 1000
# Depths the stylesheet indents (deeper spans stay at the last step, their depth written out).
MAX_INDENT = 12
# Pages past the one asked for that the trace list counts (never the whole filtered table).
LOOKAHEAD_PAGES = 4
# Choices offered by the filters whose choices are rows (agents, experiments, models).
FILTER_CHOICES = 100


class LookaheadPaginator(Paginator):
    """Counts the rows only as far as a few pages past the one asked for (``page_hint``).

    The audit log's paginator counts up to 10,000 rows; on the trace list with a selective filter
    (an agent's errors) that count alone read ~20,000 index entries, three times the page's own
    work. This one counts ``(page + LOOKAHEAD_PAGES) x per_page + 1`` rows at most, so the pager
    offers the next few pages and ``capped`` says there may be more.
    """

    def __init__(self, object_list, per_page, orphans=0, allow_empty_first_page=True, *, page_hint: int = 1):
        super().__init__(object_list, per_page, orphans, allow_empty_first_page)
        self.cap = (page_hint + LOOKAHEAD_PAGES) * per_page + 1

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: self.cap].count()

    @property
    def capped(self) -> bool:
        return self.count >= self.cap


# --- trace list filters --------------------------------------------------------------------------


class AgentFilter(admin.SimpleListFilter):
    title = "agent"
    parameter_name = "agent"

    def lookups(self, request, model_admin):
        agents = get_user_model().objects.filter(role="agent").order_by("username")[:FILTER_CHOICES]
        return [(str(agent.pk), agent.username) for agent in agents]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(agent_id=int(value))
        return queryset


class InputFilter(admin.SimpleListFilter):
    """A free-text filter (a user id has too many values to list): a small GET form, no script."""

    template = "admin/traces/input_filter.html"

    def lookups(self, request, model_admin):
        return [("", "")]  # shown even with no choices; the template draws the input

    def choices(self, changelist):
        kept = [
            (name, value)
            for name, value in changelist.get_filters_params().items()
            if name != self.parameter_name
            for value in (value if isinstance(value, list) else [value])
        ]
        yield {"parameter_name": self.parameter_name, "value": self.value() or "", "kept": kept}


class UserFilter(InputFilter):
    title = "user id"
    parameter_name = "user"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        return queryset.filter(user_id=value[:200]) if value else queryset


class ModelFilter(admin.SimpleListFilter):
    """The models of the price table and of the last day's spans (one partition), cached."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        from django.core.cache import cache

        from traces.models import Span

        models = cache.get("traces:admin:models")
        if models is None:
            since = timezone.now() - timedelta(days=1)
            recent = (
                Span.objects.filter(start_time__gte=since)
                .exclude(response_model="")
                .values_list("response_model", flat=True)
                .distinct()[:FILTER_CHOICES]
            )
            exact = ModelPrice.objects.exclude(model__regex=r"[*?\[]").values_list("model", flat=True)
            models = sorted(set(recent) | set(exact[:FILTER_CHOICES]))[:FILTER_CHOICES]
            cache.set("traces:admin:models", models, 600)
        return [(model, model) for model in models]

    def queryset(self, request, queryset):
        if self.value():
            return selectors.traces_filter(queryset, selectors.TraceFilters(model=self.value()[:200]))
        return queryset


class ExperimentFilter(admin.SimpleListFilter):
    title = "experiment"
    parameter_name = "experiment"

    def lookups(self, request, model_admin):
        from experiments.models import Experiment

        experiments = Experiment.objects.order_by("-created_at").values_list("pk", "key")[:FILTER_CHOICES]
        return [(str(pk), key) for pk, key in experiments]

    def queryset(self, request, queryset):
        from experiments.models import Experiment

        value = self.value()
        if not value:
            return queryset
        if value.isdigit():
            return queryset.filter(experiment_id=int(value))
        # An experiment's key, as the API takes it (a link or a hand-typed URL): an unknown one
        # lists nothing rather than every trace under a filter that looks applied.
        experiment_id = Experiment.objects.filter(key=value[:100]).values_list("pk", flat=True).first()
        return queryset.filter(experiment_id=experiment_id) if experiment_id else queryset.none()


class VariantFilter(admin.SimpleListFilter):
    """The variants of the chosen experiment (none listed until one is chosen)."""

    title = "variant"
    parameter_name = "variant"

    def lookups(self, request, model_admin):
        from experiments.models import Variant

        experiment = request.GET.get("experiment", "")
        if not experiment.isdigit():
            return []
        return [
            (str(pk), key) for pk, key in Variant.objects.filter(experiment_id=int(experiment)).values_list("pk", "key")
        ]

    def has_output(self):
        return True

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(variant_id=int(value))
        return queryset


class DayFilter(admin.SimpleListFilter):
    """A UTC day among the last ones that have a partition (or the last 14 days on SQLite)."""

    title = "day (UTC)"
    parameter_name = "day"

    def lookups(self, request, model_admin):
        today = timezone.now().astimezone(UTC).date()
        days = [day for day in partitions.existing_days() if day <= today] or [
            today - timedelta(days=n) for n in range(14)
        ]
        return [(day.isoformat(), day.isoformat()) for day in sorted(days, reverse=True)[:31]]

    def queryset(self, request, queryset):
        try:
            day = date.fromisoformat(self.value() or "")
        except ValueError:
            return queryset
        low = datetime.combine(day, time(0), tzinfo=UTC)
        # The trace's day is never before the day it started: the partition key prunes older days.
        return queryset.filter(start_time__gte=low, start_time__lt=low + timedelta(days=1), day__gte=day)


# --- traces ------------------------------------------------------------------------------------------


def _tokens(obj) -> int | None:
    if obj.input_tokens is None and obj.output_tokens is None:
        return None
    return (obj.input_tokens or 0) + (obj.output_tokens or 0)


def _money(value) -> str:
    """A cost to the ten decimals it is stored with, without trailing zeros (a 24-token embedding
    costs 0.00000048: rounding it to cents or micro-units would show nothing)."""
    if value is None:
        return "—"
    return format(value.normalize(), "f") if value else "0"


def _plain(value) -> str:
    """A price without trailing zeros (2.500000 -> 2.5)."""
    return format(value.normalize(), "f")


def _duration(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms"


@admin.register(Trace)
class TraceAdmin(ReadOnlyModelAdmin):
    list_display = ("start_time", "root_span", "agent_name", "user_id", "duration", "tokens", "cost_shown", "status")
    list_filter = (AgentFilter, UserFilter, ModelFilter, "status", ExperimentFilter, VariantFilter, DayFilter)
    search_fields = ("trace_id",)  # the box is shown; get_search_results matches the id exactly
    search_help_text = "A trace id (32 hex digits), exactly."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    ordering = ("-start_time", "-id")
    list_select_related = ("agent",)
    change_list_template = "admin/traces/trace/change_list.html"
    change_form_template = "admin/traces/trace/waterfall.html"

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in {"agent", "user", "model", "experiment", "variant", "day"} or super().lookup_allowed(
            lookup, value, request
        )

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        page = request.GET.get("p", "1")
        hint = int(page) if page.isdigit() and len(page) < 7 else 1
        return LookaheadPaginator(queryset, per_page, orphans, allow_empty_first_page, page_hint=hint)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        return queryset.filter(trace_id=term[:32]), False

    @admin.display(description="root span")
    def root_span(self, obj):
        return obj.root_span_name or "(no root yet)"

    @admin.display(description="agent")
    def agent_name(self, obj):
        return obj.agent.username if obj.agent_id and obj.agent else f"#{obj.agent_id}"

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj):
        return _duration(obj.duration_ms)

    @admin.display(description="tokens")
    def tokens(self, obj):
        total = _tokens(obj)
        return "—" if total is None else f"{total:,}"

    @admin.display(description="cost")
    def cost_shown(self, obj):
        shown = _money(obj.cost)
        return f"{shown} (+{obj.unpriced_spans} unpriced)" if obj.unpriced_spans else shown

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        trace = get_object_or_404(Trace.objects.select_related("agent"), pk=object_id if object_id.isdigit() else 0)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Trace {trace.trace_id}",
            "subtitle": None,
            **waterfall_context(trace),
        }
        return TemplateResponse(request, self.change_form_template, context)


def _experiment_names(trace: Trace) -> tuple[str, str]:
    if trace.experiment_id is None:
        return "", ""
    from experiments.models import Experiment, Variant

    experiment = Experiment.objects.filter(pk=trace.experiment_id).values_list("key", flat=True).first() or ""
    variant = (
        Variant.objects.filter(pk=trace.variant_id).values_list("key", flat=True).first() or ""
        if trace.variant_id
        else ""
    )
    return experiment, variant


def _row_html(node, *, total_ms: float) -> str:
    """One span's row of the waterfall. Built here rather than in a template loop: Django's template
    engine took ~0.5 s for the tags of 1,000 rows; every text goes through ``escape``."""
    span = node.span
    x = max(0.0, min(AXIS_UNITS, node.offset_ms / total_ms * AXIS_UNITS))
    width = max(2.0, min(AXIS_UNITS - x, span.duration_ms / total_ms * AXIS_UNITS))  # 2: still visible
    model = span.model
    tokens = _tokens(span)
    kind = "error" if span.status == SpanStatus.ERROR else ("llm" if model else "other")
    indent = min(node.depth, MAX_INDENT)
    unpriced = "unpriced" if model and tokens is not None else "—"
    cost = _money(span.cost) if span.cost is not None else unpriced
    offset, duration = _duration(node.offset_ms), _duration(span.duration_ms)
    name = escape(span.name)
    depth = f'<span class="traces-depth">{node.depth}&rsaquo;</span>' if node.depth > indent else ""
    detail = ""
    if span.content or span.attributes or span.status_message:
        parts = []
        if span.status_message:
            parts.append(f'<p class="traces-error-text">{escape(span.error_type)} {escape(span.status_message)}</p>')
        if span.content:
            text = json.dumps(span.content, indent=2, ensure_ascii=False)
            parts.append(f'<pre class="traces-content">{escape(text)}</pre>')
        if span.attributes:
            text = json.dumps(span.attributes, indent=2, sort_keys=True, ensure_ascii=False)
            parts.append(f'<pre class="traces-attributes">{escape(text)}</pre>')
        label = "messages" if span.content else "details"
        detail = f'<details class="traces-detail"><summary>{label}</summary>{"".join(parts)}</details>'
    operation = escape(span.operation or span.kind)
    if span.tool_name:
        operation += f'<br><span class="quiet">{escape(span.tool_name)}</span>'
    return (
        f'<tr class="traces-span traces-kind-{kind}">'
        f'<td class="traces-name traces-indent-{indent}" title="{name}">{depth}{name}{detail}</td>'
        f"<td>{operation}</td>"
        f'<td class="traces-model" title="{escape(model)}">{escape(model)}</td>'
        f'<td class="traces-num">{"" if tokens is None else tokens}</td>'
        f'<td class="traces-num">{cost}</td>'
        f'<td class="traces-status-{escape(span.status)}">{escape(span.get_status_display())}</td>'
        f'<td class="traces-bar-cell"><svg class="traces-bar" viewBox="0 0 {AXIS_UNITS} 14" '
        f'preserveAspectRatio="none" width="100%" height="14" role="img" aria-label="{offset} + {duration}">'
        f"<title>starts at {offset}, lasts {duration}</title>"
        f'<rect class="traces-bar-{kind}" x="{round(x, 2)}" y="2" width="{round(width, 2)}" height="10" rx="1"/>'
        f'</svg><span class="traces-bar-label">{duration}</span></td></tr>'
    )


def waterfall_context(trace: Trace) -> dict:
    """The trace page: its summary, and each span in tree order with its bar on the shared time axis."""
    spans = selectors.trace_spans(trace)
    tree = selectors.span_tree(spans, trace_start=trace.start_time)
    total_ms = max(trace.duration_ms, max((n.offset_ms + n.span.duration_ms for n in tree), default=0), 0.001)
    rows = mark_safe("".join(_row_html(node, total_ms=total_ms) for node in tree))  # noqa: S308 - escaped above
    ticks = [{"x": AXIS_UNITS * i / 4, "label": _duration(total_ms * i / 4)} for i in range(5)]
    experiment, variant = _experiment_names(trace)
    return {
        "trace": trace,
        "rows_html": rows,
        "span_rows": len(tree),
        "ticks": ticks,
        "axis_units": AXIS_UNITS,
        "total_duration": _duration(total_ms),
        "trace_tokens": _tokens(trace),
        "trace_cost": _money(trace.cost),
        "truncated": len(spans) < trace.span_count,
        "shown_limit": settings.TRACE_MAX_SPANS_SHOWN,
        "experiment_key": experiment,
        "variant_key": variant,
    }


# --- prices --------------------------------------------------------------------------------------------


class ModelPriceForm(forms.ModelForm):
    class Meta:
        model = ModelPrice
        fields = services.PRICE_FIELDS

    def clean_model(self):
        model = self.cleaned_data["model"]
        problem = model_pattern_problem(model)
        if problem:
            raise forms.ValidationError(problem)
        return model

    def clean_currency(self):
        currency = self.cleaned_data["currency"]
        if len(currency) != 3 or not currency.isascii() or not currency.isupper() or not currency.isalpha():
            raise forms.ValidationError("Three capital letters (ISO 4217), e.g. USD.")
        return currency

    def clean(self):
        cleaned = super().clean()
        for field in (
            "input_per_million",
            "cached_input_per_million",
            "cache_write_per_million",
            "output_per_million",
            "reasoning_per_million",
        ):
            value = cleaned.get(field)
            if value is not None and value < 0:
                self.add_error(field, "A price is zero or more.")
        return cleaned


class RepriceForm(forms.Form):
    since = forms.SplitDateTimeField(
        label="Reprice spans that started at or after (UTC)",
        help_text="Every span since then gets its cost from the price table as it is now; traces' totals follow.",
    )


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    form = ModelPriceForm
    list_display = ("model", "provider_shown", "prices", "valid_from_day", "note_short")
    list_filter = ("provider", "currency")
    search_fields = ("model", "note")
    ordering = ("provider", "model", "-valid_from")
    change_list_template = "admin/traces/modelprice/change_list.html"
    actions = ["reprice_since_selected"]
    change_form_template = "admin/traces/modelprice/change_form.html"
    readonly_fields = ("created_at", "updated_at")

    @admin.display(description="provider", ordering="provider")
    def provider_shown(self, obj):
        return obj.provider or "(any)"

    @admin.display(description="per M tokens: in / cached / cache write / out / reasoning")
    def prices(self, obj):
        def shown(value, fallback):
            return _plain(value) if value is not None else fallback

        return (
            " / ".join(
                [
                    _plain(obj.input_per_million),
                    shown(obj.cached_input_per_million, "as in"),
                    shown(obj.cache_write_per_million, "as in"),
                    _plain(obj.output_per_million),
                    shown(obj.reasoning_per_million, "as out"),
                ]
            )
            + f" {obj.currency}"
        )

    @admin.display(description="valid from", ordering="valid_from")
    def valid_from_day(self, obj):
        return (
            obj.valid_from.strftime("%Y-%m-%d %H:%M")
            if obj.valid_from.time() != time(0)
            else f"{obj.valid_from:%Y-%m-%d}"
        )

    @admin.display(description="note")
    def note_short(self, obj):
        return obj.note if len(obj.note) <= 24 else obj.note[:23] + "…"  # whole on the change page

    @admin.action(description="Reprice spans since the selected prices' earliest start…")
    def reprice_since_selected(self, request, queryset):
        if not request.user.has_perm("traces.reprice_spans"):
            raise PermissionDenied
        earliest = min(price.valid_from for price in queryset)
        return HttpResponseRedirect(reverse("admin:traces_modelprice_reprice") + f"?since={earliest:%Y-%m-%d}")

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm("traces.reprice_spans"):
            actions.pop("reprice_since_selected", None)
        return actions

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "unpriced/",
                view(partial(unpriced_models_view, admin_site=self.admin_site)),
                name="traces_unpriced_models",
            ),
            path("reprice/", view(self.reprice_view), name="traces_modelprice_reprice"),
            *super().get_urls(),
        ]

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("valid_from", timezone.now().replace(hour=0, minute=0, second=0, microsecond=0))
        return initial

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_reprice": request.user.has_perm("traces.reprice_spans")}
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except Conflict as exc:  # the form checks the unique constraint; this is a concurrent save's
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        data = {field: form.cleaned_data[field] for field in services.PRICE_FIELDS if field in form.cleaned_data}
        if change:
            saved = services.model_price_update(actor=request.user, price=obj, data=data, request=request)
        else:
            saved = services.model_price_create(actor=request.user, data=data, request=request)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        services.model_price_delete(actor=request.user, price=obj, request=request)

    def delete_queryset(self, request, queryset):
        for price in queryset:
            services.model_price_delete(actor=request.user, price=price, request=request)

    def response_add(self, request, obj, post_url_continue=None):
        self._offer_reprice(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        self._offer_reprice(request, obj)
        return super().response_change(request, obj)

    def _offer_reprice(self, request, obj) -> None:
        if not request.user.has_perm("traces.reprice_spans"):
            return
        url = reverse("admin:traces_modelprice_reprice") + f"?since={obj.valid_from:%Y-%m-%d}"
        self.message_user(
            request,
            format_html(
                'Spans already stored keep their cost. <a href="{}">Reprice spans since {}</a>',
                url,
                obj.valid_from.strftime("%Y-%m-%d"),
            ),
            messages.INFO,
        )

    def reprice_view(self, request):
        """The confirmation form of "reprice spans since <date>"; POST files the job."""
        if not request.user.has_perm("traces.reprice_spans"):
            raise PermissionDenied
        if request.method == "POST":
            form = RepriceForm(request.POST)
            if form.is_valid():
                since = form.cleaned_data["since"]
                if timezone.is_naive(since):
                    since = since.replace(tzinfo=UTC)
                job = spans_reprice(actor=request.user, since=since, request=request)
                self.message_user(request, f"Repricing spans since {since:%Y-%m-%d %H:%M} UTC (job {job.pk}).")
                return HttpResponseRedirect(reverse("admin:traces_repricejob_change", args=[job.pk]))
        else:
            try:
                initial_day = date.fromisoformat(request.GET.get("since", ""))
            except ValueError:
                initial_day = timezone.now().astimezone(UTC).date()
            form = RepriceForm(initial={"since": datetime.combine(initial_day, time(0))})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Reprice spans",
            "form": form,
        }
        return TemplateResponse(request, "admin/traces/modelprice/reprice.html", context)


def unpriced_models_view(request, *, admin_site):
    if not request.user.has_perm("traces.view_span"):
        raise PermissionDenied
    rows = selectors.unpriced_models(days=30)
    can_add = request.user.has_perm("traces.add_modelprice")
    add_url = reverse("admin:traces_modelprice_add")
    for row in rows:
        row["add_url"] = f"{add_url}?model={row['model']}&provider={row['provider']}" if can_add else ""
    context = {
        **admin_site.each_context(request),
        "opts": ModelPrice._meta,
        "title": "Unpriced models (last 30 days)",
        "rows": rows,
    }
    return TemplateResponse(request, "admin/traces/modelprice/unpriced.html", context)


# --- reprice jobs ----------------------------------------------------------------------------------------


@admin.register(RepriceJob)
class RepriceJobAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "since", "state", "progress", "requested_by", "finished_at")
    list_filter = ("state",)
    fields = (
        "since",
        "state",
        "progress",
        "spans_done",
        "spans_total",
        "requested_by",
        "created_at",
        "finished_at",
        "error",
    )
    readonly_fields = fields
    ordering = ("-created_at",)
    list_select_related = ("requested_by",)

    @admin.display(description="progress")
    def progress(self, obj):
        if obj.spans_total:
            return format_html(
                '<progress value="{}" max="{}"></progress> {} of {} spans',
                obj.spans_done,
                obj.spans_total,
                f"{obj.spans_done:,}",
                f"{obj.spans_total:,}",
            )
        return "—" if obj.state == RepriceJob.State.PENDING else f"{obj.spans_done:,} spans"
