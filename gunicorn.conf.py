"""gunicorn configuration (production web process). Every value can be overridden by environment.

Threaded workers (gthread): a request waiting on a slow upstream (enrichment) holds one thread,
not a whole worker process, so one slow provider cannot starve the API.
"""

import gc
import multiprocessing
import os
import sys

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
# Processes: 2 per core is the usual start for a mostly-I/O Django app.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
# Threads per worker process.
threads = int(os.environ.get("GUNICORN_THREADS", 8))
# Seconds a worker may be silent before it is killed and replaced; longer than ENRICHMENT deadlines.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 20))
# Seconds to hold idle keep-alive connections from the proxy.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
# Recycle workers now and then so slow leaks in third-party code cannot grow forever.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 20000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 2000))
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None  # request logs come from the app itself
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Only the configured number of proxies is trusted (the app resolves client IPs itself).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Freeze what the app holds once loaded out of the cyclic garbage collector (post_worker_init).
gc_freeze = os.environ.get("GUNICORN_GC_FREEZE", "1") != "0"


def post_worker_init(worker):
    """Moves the loaded application's objects out of the garbage collector's reach.

    A warmed-up worker tracks hundreds of thousands of objects (modules, classes, functions, URL
    patterns, settings) that live as long as the process. Each full collection walks all of them, a
    pause (bench/README.md, "Figures behind the code") during which the worker's every thread waits,
    that lands in some request's latency, and it comes round more often the more objects requests
    leave alive for a while (queued audit events, caches). ``gc.freeze()`` puts them in a permanent
    generation no collection visits: a full collection then walks only what was made since. Django
    loads the URL configuration (and with it every view module) on the first request, so it is
    loaded here first. The ``gc`` documentation freezes in the parent before forking, to spare
    copy-on-write memory too; these workers load the app after the fork, so what this saves is
    collection time. Objects frozen here are never freed, which is what they were going to be.
    """
    if not gc_freeze:
        return
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (loads every URLconf and view module)
    gc.collect()
    gc.freeze()


def worker_exit(server, worker):
    """Drains the worker's background writers before the process ends: the audit log's
    (audit/background.py), the exposures' (experiments/services/exposures.py) and the monitoring
    operations' (monitoring/operations.py).

    Runs in the worker after its last request (graceful stop, max_requests recycling, timeout
    abort). A worker that never imported a writer has nothing queued in it.
    """
    background = sys.modules.get("audit.background")
    if background is not None:
        background.stop_background_writer()
    exposures = sys.modules.get("experiments.services.exposures")
    if exposures is not None:
        exposures.exposures_writer_stop()
    operations = sys.modules.get("monitoring.operations")
    if operations is not None:
        operations.operations_writer_stop()
