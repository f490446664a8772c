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
# Agents fetch outside context and search collected documents; people read sources and documents
# (analysts and operators may export them); operators may also run a source's collection now.
_ENRICHMENT_READ = {"enrichment.view_collecteddocument", "enrichment.view_datasource"}
ROLE_PERMISSIONS[Role.AGENT] |= {"enrichment.fetch_context", "enrichment.view_collecteddocument"}
ROLE_PERMISSIONS[Role.ANALYST] |= _ENRICHMENT_READ
ROLE_PERMISSIONS[Role.OPERATOR] |= _ENRICHMENT_READ | {"enrichment.collect_datasource"}
ROLE_PERMISSIONS[Role.ADMIN] |= _ENRICHMENT_READ | {"enrichment.collect_datasource", "enrichment.fetch_context"}


# --- reports and jobs (issue 10) ----------------------------------------------------------------
