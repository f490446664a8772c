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


# --- monitoring (issue 8) -----------------------------------------------------------------------


# --- enrichment (issue 9) -----------------------------------------------------------------------


# --- reports and jobs (issue 10) ----------------------------------------------------------------
