from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from agentplatform import health

api_v1 = [
    path("auth/", include("accounts.urls")),
    path("", include("experiments.urls")),
    path("audit/", include("audit.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("", include("enrichment.urls")),
    path("reports/", include("reports.urls")),
]
if settings.BENCH_ENDPOINTS:
    from agentplatform.bench_views import AuthenticatedNoopView, NoopView, RateLimitedNoopView

    api_v1 += [
        path("bench/noop", NoopView.as_view(), name="bench-noop"),
        path("bench/noop-auth", AuthenticatedNoopView.as_view(), name="bench-noop-auth"),
        path("bench/noop-limited", RateLimitedNoopView.as_view(), name="bench-noop-limited"),
    ]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", include("monitoring.metrics_urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
]

handler400 = "agentplatform.errors.handler400"
handler403 = "accounts.handlers.handler403"  # budgets and audits, then agentplatform.errors.handler403
handler404 = "agentplatform.errors.handler404"
handler500 = "agentplatform.errors.handler500"

admin.site.site_header = "Agent Ops Platform"
admin.site.site_title = "Agent Ops"
admin.site.index_title = "Operations"
