"""Roles and the Django permissions each one carries: the one table the whole platform uses.

A data migration creates one group per role; a user's group follows its role. Each app lists the
permissions of its models and views here in its own block, so the matrix is readable in one place.
The mechanism (group names, syncing the table into the groups after every ``migrate``, moving a
user between groups when their role changes) lives in ``accounts.services``.
"""

from __future__ import annotations

from accounts.models import Role

# "app_label.codename" strings. The admin role also gets is_superuser-like reach through
# ADMIN_ALL (every permission of every model); the other roles get exactly what is listed.
ROLE_PERMISSIONS: dict[str, set[str]] = {
    Role.ADMIN: set(),
    Role.OPERATOR: set(),
    Role.ANALYST: set(),
    Role.AGENT: set(),
}
ADMIN_ALL = True


def role_group_name(role: str) -> str:
    """The Django group that carries ``role``'s permissions (shown and adjustable in the admin)."""
    return f"role:{role}"


# --- accounts ---------------------------------------------------------------------------------
# Everyone authenticated may read their own identity (auth/me needs no permission). Analysts read
# users and keys (who can do what), admins manage them (ADMIN_ALL).
ROLE_PERMISSIONS[Role.ANALYST] |= {"accounts.view_user", "accounts.view_apikey"}
ROLE_PERMISSIONS[Role.OPERATOR] |= {"accounts.view_user", "accounts.view_apikey"}


# --- audit ------------------------------------------------------------------------------------
# Agents write events and read only their own (the selector filters on the caller); people who
# read read everything and may export; only admins (ADMIN_ALL) have more. Nobody changes or deletes
# events: the admin is read-only and the ORM and a database trigger refuse it.
_AUDIT_READ = {
    "audit.view_auditevent",
    "audit.view_own_auditevent",
    "audit.export_auditevent",
    "audit.view_auditexport",
    "audit.view_auditsealing",
    "audit.view_auditverification",
    "audit.view_auditcheckpoint",
}
ROLE_PERMISSIONS[Role.AGENT] |= {"audit.add_auditevent", "audit.view_own_auditevent"}
ROLE_PERMISSIONS[Role.ANALYST] |= _AUDIT_READ
ROLE_PERMISSIONS[Role.OPERATOR] |= _AUDIT_READ


# --- experiments ------------------------------------------------------------------------------
# Agents resolve prompts (and read the GrowthBook payload to do it locally) and report results;
# analysts read and export; operators also create, change, start, pause and stop.
_EXPERIMENTS_READ = {
    "experiments.view_experiment",
    "experiments.view_variant",
    "experiments.view_exposure",
    "experiments.view_result",
    "experiments.export_experiment",
}
ROLE_PERMISSIONS[Role.AGENT] |= {"experiments.resolve_prompt", "experiments.add_result"}
ROLE_PERMISSIONS[Role.ANALYST] |= _EXPERIMENTS_READ
ROLE_PERMISSIONS[Role.OPERATOR] |= _EXPERIMENTS_READ | {
    "experiments.add_experiment",
    "experiments.change_experiment",
    "experiments.delete_experiment",
    "experiments.run_experiment",
    "experiments.add_variant",
    "experiments.change_variant",
    "experiments.delete_variant",
}


# --- prompts ----------------------------------------------------------------------------------
# Agents and analysts read the registry; operators also create prompts and versions and move the
# labels that are not protected; moving a protected label (production by default) is the admins'
# (ADMIN_ALL: prompts.move_protected_label). Versions are immutable: nobody changes or deletes one.
_PROMPTS_READ = {
    "prompts.view_prompt",
    "prompts.view_promptversion",
    "prompts.view_promptlabel",
    "prompts.view_promptlabelmove",
}
ROLE_PERMISSIONS[Role.AGENT] |= _PROMPTS_READ
ROLE_PERMISSIONS[Role.ANALYST] |= _PROMPTS_READ
ROLE_PERMISSIONS[Role.OPERATOR] |= _PROMPTS_READ | {
    "prompts.add_prompt",
    "prompts.change_prompt",
    "prompts.add_promptversion",
    "prompts.change_promptlabel",
}


# --- monitoring -------------------------------------------------------------------------------
# Agents push operations and runs; analysts, operators and admins read summaries, the dashboard
# and the rows behind them (admin views and CSV exports); nobody but admins changes or deletes them.
_MONITORING_READ = {
    "monitoring.view_metrics",
    "monitoring.view_operationminute",
    "monitoring.view_operationhour",
    "monitoring.view_agentrun",
    "monitoring.view_systemsnapshot",
}
ROLE_PERMISSIONS[Role.AGENT] |= {"monitoring.push_metrics"}
ROLE_PERMISSIONS[Role.ANALYST] |= _MONITORING_READ
ROLE_PERMISSIONS[Role.OPERATOR] |= _MONITORING_READ
ROLE_PERMISSIONS[Role.ADMIN] |= _MONITORING_READ | {"monitoring.push_metrics"}


# --- traces -------------------------------------------------------------------------------------
# Agents export spans (OTLP) and read their own traces; analysts and operators read every trace,
# span and price; operators may also reprice spans after a price change; admins (ADMIN_ALL) also
# write the price table.
_TRACES_READ = {
    "traces.view_trace",
    "traces.view_span",
    "traces.view_modelprice",
    "traces.view_repricejob",
}
ROLE_PERMISSIONS[Role.AGENT] |= {"traces.push_traces", "traces.view_own_trace"}
ROLE_PERMISSIONS[Role.ANALYST] |= _TRACES_READ
ROLE_PERMISSIONS[Role.OPERATOR] |= _TRACES_READ | {"traces.reprice_spans"}


# --- enrichment -------------------------------------------------------------------------------
# Agents fetch outside context and search collected documents; people read sources and documents
# (analysts and operators may export them); operators may also run a source's collection now.
_ENRICHMENT_READ = {"enrichment.view_collecteddocument", "enrichment.view_datasource"}
ROLE_PERMISSIONS[Role.AGENT] |= {"enrichment.fetch_context", "enrichment.view_collecteddocument"}
ROLE_PERMISSIONS[Role.ANALYST] |= _ENRICHMENT_READ
ROLE_PERMISSIONS[Role.OPERATOR] |= _ENRICHMENT_READ | {"enrichment.collect_datasource"}
ROLE_PERMISSIONS[Role.ADMIN] |= _ENRICHMENT_READ | {"enrichment.collect_datasource", "enrichment.fetch_context"}


# --- reports and jobs ---------------------------------------------------------------------------
# Analysts read reports, download them and see job runs and schedules; operators also run jobs now
# and edit schedules (django-celery-beat); admins have everything through ADMIN_ALL.
_REPORTS_READ = {
    "reports.view_report",
    "reports.export_report",
    "reports.view_jobrun",
    "django_celery_beat.view_periodictask",
    "django_celery_beat.view_crontabschedule",
    "django_celery_beat.view_intervalschedule",
}
ROLE_PERMISSIONS[Role.ANALYST] |= _REPORTS_READ
ROLE_PERMISSIONS[Role.OPERATOR] |= _REPORTS_READ | {
    "reports.run_job",
    "django_celery_beat.change_periodictask",
    "django_celery_beat.add_crontabschedule",
    "django_celery_beat.add_intervalschedule",
}
