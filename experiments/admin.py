"""Admin of experiments."""

from __future__ import annotations

# Statistics pages (issue 7): added to the registered Experiment admin through its get_urls.
# Keep this call after the Experiment admin is registered (it registers a minimal one otherwise).
from experiments.stats.admin_views import install as install_stats_admin

install_stats_admin()
