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


# --- accounts (issue 4) -------------------------------------------------------------------------


# --- audit (issue 5) ----------------------------------------------------------------------------


# --- experiments (issues 6 and 7) ---------------------------------------------------------------
# Seconds between a process's checks of the shared experiments version key: how long a start,
# pause or stop takes to reach every web process (the issue asks for about one second).
EXPERIMENTS_SNAPSHOT_CHECK_SECONDS = env.float("EXPERIMENTS_SNAPSHOT_CHECK_SECONDS", "1.0", minimum=0.0)
# Entries: (experiment, user) pairs a process remembers having buffered, so returning users cost
# no Redis write; ~100 bytes each, so 200,000 is ~20 MB per process at most.
EXPERIMENTS_EXPOSURE_SEEN_MAX = env.int("EXPERIMENTS_EXPOSURE_SEEN_MAX", "200000", minimum=1)
# Rows moved from the exposure buffer to the database per INSERT (one statement stays well under
# PostgreSQL's 65,535 bind parameters at 4 per row).
EXPERIMENTS_EXPOSURE_FLUSH_BATCH = env.int("EXPERIMENTS_EXPOSURE_FLUSH_BATCH", "5000", minimum=1, maximum=15000)
# Seconds between scheduled exposure flushes: how stale the analysis population may be.
EXPERIMENTS_EXPOSURE_FLUSH_SECONDS = env.int("EXPERIMENTS_EXPOSURE_FLUSH_SECONDS", "5", minimum=1)
# Rows per results request: the contract (1 to 1,000); larger batches answer 413.
EXPERIMENTS_RESULTS_MAX_ROWS = env.int("EXPERIMENTS_RESULTS_MAX_ROWS", "1000", minimum=1, maximum=5000)


# Experiment statistics (issue 7).
# Significance level of every test and interval (two-sided; 0.05 is the industry default).
EXPERIMENT_STATS_ALPHA = env.float("EXPERIMENT_STATS_ALPHA", 0.05, minimum=0.0001)
# Power the MDE and sample sizes are computed for (0.8 is the convention GrowthBook/Eppo use).
EXPERIMENT_STATS_POWER = env.float("EXPERIMENT_STATS_POWER", 0.8, minimum=0.01)
# Users per variant (with a primary-metric value) below which the decision is "invalid": the
# normal approximation behind Welch's test is not trusted for skewed per-user means below ~100.
EXPERIMENT_STATS_MIN_USERS_PER_VARIANT = env.int("EXPERIMENT_STATS_MIN_USERS_PER_VARIANT", 100, minimum=2)
# Sequential testing: total users at which the confidence sequence is tightest (GrowthBook's 5000).
EXPERIMENT_STATS_SEQUENTIAL_TUNING = env.float("EXPERIMENT_STATS_SEQUENTIAL_TUNING", 5000, minimum=1)
# Seconds the rollup stays behind "now": a result row becomes visible when its transaction commits,
# which may be after its recorded_at; ingestion transactions take milliseconds, 30 s is ample margin.
EXPERIMENT_STATS_ROLLUP_LAG_SECONDS = env.int("EXPERIMENT_STATS_ROLLUP_LAG_SECONDS", 30, minimum=0)
# Seconds of staleness after which GET .../stats catches the rollup up itself before answering
# (the scheduled rollup normally keeps it fresher; a catch-up reads only the new rows).
EXPERIMENT_STATS_MAX_STALENESS_SECONDS = env.int("EXPERIMENT_STATS_MAX_STALENESS_SECONDS", 60, minimum=0)
# PostgreSQL work_mem for the statistics' per-user GROUP BYs (SET LOCAL, one transaction): 4 MB
# (the server default) spills a million users to disk; 256MB keeps them in memory. Empty: default.
EXPERIMENT_STATS_WORK_MEM = env.str("EXPERIMENT_STATS_WORK_MEM", "256MB")


# --- monitoring (issue 8) -----------------------------------------------------------------------


# --- enrichment (issue 9) -----------------------------------------------------------------------


# --- jobs and reports (issue 10) ----------------------------------------------------------------
