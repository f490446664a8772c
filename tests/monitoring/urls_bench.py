"""The benchmark's views (bench/urls.py) mounted as BENCH_ENDPOINTS=1 would mount them."""

from django.urls import include, path

urlpatterns = [path("api/v1/bench/", include("bench.urls"))]
