"""Settings for every process (web, worker, beat, tests), read from the environment.

``DJANGO_ENV`` picks the defaults: ``production`` (the default: secrets are
required, nothing insecure is assumed), ``development`` (``make run``: SQLite,
a file cache and a filesystem broker shared by web, worker and beat) or
``test``. Every variable is listed in ``.env.example``.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from agentplatform.env import env, parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent

DJANGO_ENV = env.choice("DJANGO_ENV", ("production", "development", "test"), default="production")
PRODUCTION = DJANGO_ENV == "production"
DEVELOPMENT = DJANGO_ENV == "development"
TESTING = DJANGO_ENV == "test"

# Runtime files of the embedded mode (SQLite database, file cache, broker folders, exports).
VAR_DIR = Path(env.str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", DEVELOPMENT)

_INSECURE_KEY = "django-insecure-development-only-key-never-use-in-production-0000"
SECRET_KEY = env.str("SECRET_KEY", "") or (None if PRODUCTION else _INSECURE_KEY)
if SECRET_KEY is None:
    raise ImproperlyConfigured("Environment variable SECRET_KEY is required when DJANGO_ENV=production.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Environment variable ALLOWED_HOSTS is required when DJANGO_ENV=production.")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", "")

# Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted.
# 0 (default) means the socket peer is the client: X-Forwarded-For is ignored entirely.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", "0", minimum=0, maximum=10)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_ratelimit",
    "agentplatform.apps.AgentPlatformConfig",
    "accounts",
    "audit",
    "experiments",
    "monitoring",
    "enrichment",
    "reports",
]

MIDDLEWARE = [
    "agentplatform.middleware.RequestIdMiddleware",
    "monitoring.middleware.RequestTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "agentplatform.urls"
WSGI_APPLICATION = "agentplatform.wsgi.application"
ASGI_APPLICATION = "agentplatform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
# DATABASE_URL (postgres://user:pass@host:5432/name) in production; SQLite under VAR_DIR otherwise.
_database_url = env.str("DATABASE_URL", "")
if _database_url:
    try:
        _db = dj_database_url.parse(
            _database_url, conn_max_age=env.int("DB_CONN_MAX_AGE", "60", minimum=0), conn_health_checks=True
        )
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"Environment variable DATABASE_URL is not a database URL: {exc}") from None
    if _db["ENGINE"] == "django.db.backends.postgresql":
        # Seconds: a dead database must turn into a fast 503, not a hung worker.
        _db.setdefault("OPTIONS", {})["connect_timeout"] = env.int("DB_CONNECT_TIMEOUT", "3", minimum=1)
else:
    if PRODUCTION:
        raise ImproperlyConfigured("Environment variable DATABASE_URL is required when DJANGO_ENV=production.")
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env.str("SQLITE_PATH", str(VAR_DIR / "db.sqlite3")),
        "OPTIONS": {
            # WAL lets the web, worker and beat processes read while one writes; the busy
            # timeout (seconds) makes a writer wait for the lock instead of failing at once.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
        },
    }
_test_db_name = env.str("DATABASE_TEST_NAME", "")
if _test_db_name:
    # Lets parallel test runs on one PostgreSQL server use separate test databases.
    _db["TEST"] = {"NAME": _test_db_name}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache --------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", "")
# Seconds a Redis call may take before the caller treats Redis as down (fail-open/closed paths).
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", "0.5", minimum=0.01)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", "ap"),
            "OPTIONS": {
                "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
                "socket_timeout": REDIS_SOCKET_TIMEOUT,
            },
        }
    }
elif TESTING:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
else:
    if PRODUCTION:
        raise ImproperlyConfigured("Environment variable REDIS_URL is required when DJANGO_ENV=production.")
    # The embedded mode needs one cache that web, worker and beat all see: a directory of files.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
EMBEDDED_CACHE = CACHES["default"]["BACKEND"].endswith("FileBasedCache")

# django-ratelimit refuses caches without atomic increments (its checks E003/W001). Redis has
# them; the embedded file cache does not, so make run (and only make run) silences that check.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001", "django_ratelimit.E003"] if EMBEDDED_CACHE else []

# --- Auth ---------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Hashing with PBKDF2's full cost makes every test login take ~0.3 s; tests check logic, not cost.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Security -------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_COUNT else None
# Health probes come over plain HTTP from the orchestrator, inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", "31536000" if PRODUCTION else "0", minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
# Preload is on by default so check --deploy is clean; turn off (0) before the domain is ready for it.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Bytes: largest request body accepted by default; batch endpoints raise it per view, never past
# the hard ceiling.
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", str(1024 * 1024), minimum=1024)
MAX_BATCH_REQUEST_BYTES = env.int(
    "MAX_BATCH_REQUEST_BYTES", str(8 * 1024 * 1024), minimum=1024, maximum=10 * 1024 * 1024
)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BATCH_REQUEST_BYTES

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["agentplatform.throttling.GroupRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "agentplatform.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Ops Platform API",
    "DESCRIPTION": "Prompt experiments, audit, metrics and enrichment for a fleet of LLM agents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Serves /api/v1/bench/* (the benchmark harness's baseline views); never on in a real deployment.
BENCH_ENDPOINTS = env.bool("BENCH_ENDPOINTS", False)
# Bearer token for /metrics; when empty, /metrics answers only requests from loopback.
METRICS_TOKEN = env.str("METRICS_TOKEN", "")

# --- Rate limits (django-ratelimit) ---------------------------------------------------------
# Per endpoint group, "N/period"; each is overridable as RATE_LIMIT_<GROUP> with dots as
# underscores, e.g. RATE_LIMIT_PROMPTS_RESOLVE=6000/m.
_DEFAULT_RATE_LIMITS = {
    "auth.token": "10/m",
    "auth.refresh": "30/m",
    "prompts.resolve": "6000/m",
    "experiments.results": "600/m",
    "experiments.read": "600/m",
    "experiments.write": "60/m",
    "audit.write": "600/m",
    "audit.read": "300/m",
    "monitoring.write": "600/m",
    "monitoring.read": "300/m",
    "enrichment.context": "120/m",
    "documents.search": "300/m",
    "reports.read": "120/m",
}
RATE_LIMITS = {
    group: env.rate("RATE_LIMIT_" + group.upper().replace(".", "_"), default)
    for group, default in _DEFAULT_RATE_LIMITS.items()
}
for _group, _rate in RATE_LIMITS.items():
    parse_rate(_rate, name=_group)
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", True)

# --- Celery ---------------------------------------------------------------------------------
# Broker: CELERY_BROKER_URL, else REDIS_URL, else (make run) a filesystem broker under VAR_DIR.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", REDIS_URL or ("memory://" if TESTING else "filesystem://"))
if PRODUCTION and CELERY_BROKER_URL.startswith(("filesystem", "memory")):
    raise ImproperlyConfigured("Set CELERY_BROKER_URL or REDIS_URL when DJANGO_ENV=production.")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis", "rediss")):
    # Seconds: a task must be redelivered if its worker dies; longer than the longest hard limit.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_timeout": 5, "socket_connect_timeout": 3}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Seconds: the default soft/hard limits of any task; jobs set their own where they need more.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", "300", minimum=1)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", "360", minimum=1)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- Logging --------------------------------------------------------------------------------
# JSON lines in production (one object per record, for log shippers); readable lines otherwise.
LOG_FORMAT = env.choice("LOG_FORMAT", ("json", "text"), "json" if PRODUCTION else "text")
LOG_LEVEL = env.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "agentplatform.logging.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "agentplatform.logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django logs every 4xx under django.request; the platform logs its own errors with context.
        "django.request": {"level": "ERROR"},
        "celery": {"level": "INFO"},
    },
}


# --- cross-cutting: rate limits, breakers, outbound HTTP (issue 3) -------------------------------
# Outbound HTTP (agentplatform.http): seconds per phase; every client bounds all four. Connect and
# pool are short so a dead host is noticed fast; read is what a slow but healthy API needs.
HTTP_CONNECT_TIMEOUT = env.float("HTTP_CONNECT_TIMEOUT", "3", minimum=0.1)
HTTP_READ_TIMEOUT = env.float("HTTP_READ_TIMEOUT", "10", minimum=0.1)
HTTP_WRITE_TIMEOUT = env.float("HTTP_WRITE_TIMEOUT", "10", minimum=0.1)
HTTP_POOL_TIMEOUT = env.float("HTTP_POOL_TIMEOUT", "3", minimum=0.1)
# Seconds an MCP server's event stream may stay silent before the session is dropped (the SDK's
# own default is 300 s; agents wait on these calls, so a minute).
MCP_SSE_READ_TIMEOUT = env.float("MCP_SSE_READ_TIMEOUT", "60", minimum=1)
HTTP_USER_AGENT = env.str("HTTP_USER_AGENT", "AgentOpsPlatform/1.0")

# Circuit breakers (agentplatform.breakers): "default" applies to every name without its own
# entry; apps add entries in their sections, e.g. CIRCUIT_BREAKERS["search"] = {"fail_max": 3}.
# fail_max: consecutive failures that open it; reset_timeout: seconds open before a trial call;
# success_threshold: successful trials that close it; max_retry_after: seconds, the longest an
# upstream Retry-After may hold it open.
CIRCUIT_BREAKERS: dict[str, dict] = {
    "default": {
        "fail_max": env.int("CIRCUIT_BREAKER_FAIL_MAX", "5", minimum=1),
        "reset_timeout": env.float("CIRCUIT_BREAKER_RESET_TIMEOUT", "30", minimum=1),
        "success_threshold": env.int("CIRCUIT_BREAKER_SUCCESS_THRESHOLD", "1", minimum=1),
        "max_retry_after": env.float("CIRCUIT_BREAKER_MAX_RETRY_AFTER", "300", minimum=1),
    },
}
# Where breaker state is shared between processes; empty = each process keeps its own.
CIRCUIT_BREAKER_REDIS_URL = env.str("CIRCUIT_BREAKER_REDIS_URL", REDIS_URL)
CIRCUIT_BREAKER_KEY_PREFIX = env.str("CIRCUIT_BREAKER_KEY_PREFIX", "ap:breaker")
# Seconds between attempts to reach Redis again once it failed (meanwhile the local state serves,
# and calls don't each wait for a socket timeout).
CIRCUIT_BREAKER_REDIS_RETRY_SECONDS = env.float("CIRCUIT_BREAKER_REDIS_RETRY_SECONDS", "5", minimum=0)

# Rate limits (agentplatform.ratelimit; the groups and their rates are RATE_LIMITS above).
# Groups whose requests are refused (503) rather than served unlimited while the cache is down:
# glob patterns. Login fails closed (an outage must not open the door to password guessing);
# agent endpoints fail open (an outage must not stop the fleet).
RATE_LIMIT_FAIL_CLOSED = env.list("RATE_LIMIT_FAIL_CLOSED", "auth.*")
# Seconds the rate limiter skips an unreachable cache before trying again (so an outage costs
# one socket timeout every few seconds, not one per request).
RATE_LIMIT_CACHE_RETRY_SECONDS = env.float("RATE_LIMIT_CACHE_RETRY_SECONDS", "5", minimum=0)
# django-ratelimit's checks know neither Django's own RedisCache (W001: our counter increments it
# with one MULTI/EXEC, see agentplatform/ratelimit.py) nor that the test suite is one process (E003
# for its local-memory cache).
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.W001"]
elif TESTING:
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.W001", "django_ratelimit.E003"]


# --- accounts (issue 4) -------------------------------------------------------------------------


# --- audit (issue 5) ----------------------------------------------------------------------------


# --- experiments (issues 6 and 7) ---------------------------------------------------------------


# --- monitoring (issue 8) -----------------------------------------------------------------------
# Where open minutes of latency histograms accumulate: "redis" (atomic HINCRBY, any number of
# processes and hosts) or "database" (UPSERT increments into monitoring_countercell; the embedded
# mode, shared by web and worker through SQLite). Defaults to redis whenever REDIS_URL is set.
MONITORING_STORE = env.choice("MONITORING_STORE", ("redis", "database"), "redis" if REDIS_URL else "database")
# Seconds between flushes of a process's buffered observations (one pipeline per flush): the most a
# crashed process can lose. 1 s keeps request overhead to a dict update.
MONITORING_FLUSH_INTERVAL_SECONDS = env.float("MONITORING_FLUSH_INTERVAL_SECONDS", "1.0", minimum=0.05)
# Flush from a background thread per process; tests turn it off and flush explicitly.
MONITORING_BACKGROUND_FLUSH = env.bool("MONITORING_BACKGROUND_FLUSH", not TESTING)
# Seconds after a minute ends before the rollup takes it: longer than a flush interval plus clock
# skew between hosts, so late flushes still land in the open minute.
MONITORING_ROLLUP_GRACE_SECONDS = env.int("MONITORING_ROLLUP_GRACE_SECONDS", "10", minimum=0)
# Days of minute rows kept before only their hours remain (hours are written alongside minutes).
MONITORING_MINUTE_RETENTION_DAYS = env.int("MONITORING_MINUTE_RETENTION_DAYS", "7", minimum=1)
# Days of hour rows, agent runs and system snapshots kept.
MONITORING_HOUR_RETENTION_DAYS = env.int("MONITORING_HOUR_RETENTION_DAYS", "90", minimum=1)
# Seconds an operation event_id is at least remembered for deduplication (at most twice that):
# agents retry a failed push within seconds to minutes. Memory is ~60 bytes per id, so Redis holds
# rate x 2 x window of them (1,000 ids/s -> ~110 MB at 15 min); raise it only with the memory.
MONITORING_EVENT_ID_TTL_SECONDS = env.int("MONITORING_EVENT_ID_TTL_SECONDS", "900", minimum=60)
# Seconds between process heartbeats (RSS of each web and worker process).
MONITORING_HEARTBEAT_SECONDS = env.int("MONITORING_HEARTBEAT_SECONDS", "15", minimum=1)
# Request timing middleware on/off (read per request, so tests and benches can compare).
MONITORING_TIMING_ENABLED = env.bool("MONITORING_TIMING_ENABLED", True)
# Largest batches the ingestion endpoints accept (rows).
MONITORING_MAX_OPERATIONS_PER_BATCH = 5000
MONITORING_MAX_RUNS_PER_BATCH = 1000


# --- enrichment (issue 9) -----------------------------------------------------------------------


# --- jobs and reports (issue 10) ----------------------------------------------------------------
