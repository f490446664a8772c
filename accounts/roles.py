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


# --- enrichment (issue 9) -----------------------------------------------------------------------


# --- reports and jobs (issue 10) ----------------------------------------------------------------
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
