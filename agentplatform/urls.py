from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from agentplatform import api_docs, probes

api_v1 = [
    path("auth/", include("accounts.urls")),
    path("", include("experiments.urls")),  # before prompts: prompts/resolve is the experiments' route
    path("", include("prompts.urls")),
    path("audit/", include("audit.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("", include("enrichment.urls")),
    path("reports/", include("reports.urls")),
    path("", include("traces.urls")),
]
if settings.BENCH_ENDPOINTS:
    api_v1.append(path("bench/", include("bench.urls")))

urlpatterns = [
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", include("monitoring.metrics_urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", api_docs.schema_view, name="schema"),
    path("api/docs/", api_docs.docs_view, name="swagger-ui"),
    path("admin/", admin.site.urls),
]

handler400 = "agentplatform.errors.handler400"
handler403 = "accounts.handlers.handler403"  # budgets and audits, then agentplatform.errors.handler403
handler404 = "agentplatform.errors.handler404"
handler500 = "agentplatform.errors.handler500"
# admin.site is agentplatform.admin_site.OpsAdminSite (its title, overview index and grouped navigation).
