"""Roles and the Django permissions each one carries: the one table the whole platform uses.

A data migration creates one group per role; a user's group follows its role. Each app lists the
permissions of its models and views here in its own block, so the matrix is readable in one place.
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

# --- accounts (issue 4) -------------------------------------------------------------------------


# --- audit (issue 5) ----------------------------------------------------------------------------


# --- experiments (issues 6 and 7) ---------------------------------------------------------------


# --- monitoring (issue 8) -----------------------------------------------------------------------
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


# --- enrichment (issue 9) -----------------------------------------------------------------------


# --- reports and jobs (issue 10) ----------------------------------------------------------------
