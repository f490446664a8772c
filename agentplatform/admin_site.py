"""The admin site: an overview of the day as its index, and the navigation grouped by task.

``OpsAdminSite`` is the project's ``admin.site`` (``AgentPlatformAdminConfig.default_site``), so every
``admin.register`` keeps working and every admin URL stays where it was. Two things change:

- ``index`` renders the overview (``agentplatform.overview``): running experiments, prompt labels
  that moved, job health, the agent fleet over 24 h, open circuit breakers, each linking to its page,
  with the grouped navigation below.
- ``get_app_list`` (without an ``app_label``) groups the models by the task staff come for
  (``NAV_GROUPS``); library internals go under "Advanced" and a model no group names under "Other",
  so a new model is never hidden. An app's own index page (``/admin/<app>/``) lists its models as before.
"""

from __future__ import annotations

import re

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

# (group name, its models as "app_label.ModelName"), in the order shown.
NAV_GROUPS: list[tuple[str, list[str]]] = [
    (
        "Experiments & prompts",
        [
            "experiments.Experiment",
            "prompts.Prompt",
            "prompts.PromptVersion",
            "prompts.PromptLabelMove",
            "experiments.Exposure",
            "experiments.Result",
        ],
    ),
    ("Agents & traces", ["traces.Trace", "monitoring.AgentRun", "traces.ModelPrice", "traces.RepriceJob"]),
    ("Quality", ["reports.Report", "enrichment.DataSource", "enrichment.CollectedDocument"]),
    (
        "Audit",
        [
            "audit.AuditEvent",
            "audit.AuditExport",
            "audit.AuditVerification",
            "audit.AuditCheckpoint",
            "audit.AuditSealing",
        ],
    ),
    (
        "Operations",
        [
            "reports.JobRun",
            "django_celery_beat.PeriodicTask",
            "agentplatform.BreakerTransition",
            "monitoring.ProcessHeartbeat",
            "monitoring.SystemSnapshot",
        ],
    ),
    ("Access", ["accounts.User", "accounts.ApiKey", "auth.Group"]),
    (
        "Advanced",
        [
            # The monitoring dashboard (Operations) is what a person reads; these are its raw rows.
            "monitoring.OperationMinute",
            "monitoring.OperationHour",
            "accounts.LoginFailureCount",
            "token_blacklist.OutstandingToken",
            "token_blacklist.BlacklistedToken",
            "django_celery_beat.CrontabSchedule",
            "django_celery_beat.IntervalSchedule",
            "django_celery_beat.ClockedSchedule",
            "django_celery_beat.SolarSchedule",
            "axes.AccessAttempt",
            "axes.AccessLog",
            "axes.AccessFailureLog",
        ],
    ),
]
OTHER_GROUP = "Other"

# Pages that are not a model's list but belong in a group: (group, name, URL name, permission).
NAV_PAGES: list[tuple[str, str, str, str]] = [
    ("Operations", "Monitoring dashboard", "admin:monitoring_dashboard", "monitoring.view_metrics"),
]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class OpsAdminSite(admin.AdminSite):
    site_header = "Agent Ops Platform"
    site_title = "Agent Ops"
    index_title = "Today"
    index_template = "admin/overview.html"
    # "View site" would lead to "/", which the API does not serve (a 404): it leads to the overview.
    site_url = "/admin/"
    # The app list is the index page and every page's breadcrumbs lead there; the sidebar repeating
    # it took 300 of 1,280 px from every list, so wide lists scrolled sideways inside their box.
    enable_nav_sidebar = False

    def get_app_list(self, request, app_label=None):
        if app_label is not None:
            return super().get_app_list(request, app_label)
        return self.nav_groups(request)

    def nav_groups(self, request) -> list[dict]:
        """The registered models the user may see, grouped by task (``NAV_GROUPS``), in the admin
        template's app-list shape (each group an "app" without an index page of its own)."""
        models: dict[str, dict] = {}
        for app in self._build_app_dict(request).values():
            for model in app["models"]:
                models[f"{app['app_label']}.{model['object_name']}"] = model
        groups: list[dict] = []
        for name, members in NAV_GROUPS:
            rows = [models.pop(member) for member in members if member in models]
            groups.append({"name": name, "app_label": _slug(name), "app_url": "", "models": rows})
        by_name = {group["name"]: group for group in groups}
        for group_name, page_name, url_name, permission in NAV_PAGES:
            if not request.user.has_perm(permission):
                continue
            try:
                url = reverse(url_name, current_app=self.name)
            except NoReverseMatch:
                continue
            by_name[group_name]["models"].insert(
                0, {"name": page_name, "object_name": _slug(page_name), "admin_url": url, "view_only": True}
            )
        if models:
            rest = sorted(models.values(), key=lambda model: str(model["name"]).lower())
            groups.append({"name": OTHER_GROUP, "app_label": "other", "app_url": "", "models": rest})
        return [group for group in groups if group["models"]]

    def index(self, request, extra_context=None):
        from agentplatform.overview import overview_context

        context = {
            **self.each_context(request),
            "title": self.index_title,
            "subtitle": None,
            "app_list": self.get_app_list(request),
            **overview_context(request, site=self),
            **(extra_context or {}),
        }
        request.current_app = self.name
        return TemplateResponse(request, self.index_template, context)


class AgentPlatformAdminConfig(AdminConfig):
    """``django.contrib.admin`` with ``OpsAdminSite`` as ``admin.site``."""

    default_site = "agentplatform.admin_site.OpsAdminSite"
