"""Settings for every process (web, worker, beat, tests), read from the environment.

``DJANGO_ENV`` picks the defaults: ``production`` (the default: secrets are
required, nothing insecure is assumed), ``development`` (``make run``: SQLite,
a file cache and a filesystem broker shared by web, worker and beat) or
``test``. Every variable is listed in ``.env.example``.

Sections go by topic: the process and its secrets, Django's application wiring, storage (database,
cache, files), HTTP security, authentication, the API, rate limits, outbound calls, Celery and
logging, then one section per app. Each setting is assigned once; its comment gives the unit and
why the default is what it is, and the docs page that explains it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from agentplatform.env import check_secrets, env, parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Environment --------------------------------------------------------------------------------
DJANGO_ENV = env.choice("DJANGO_ENV", ("production", "development", "test"), default="production")
PRODUCTION = DJANGO_ENV == "production"
DEVELOPMENT = DJANGO_ENV == "development"
TESTING = DJANGO_ENV == "test"

# Runtime files of the embedded mode (SQLite database, file cache, broker folders, exports).
VAR_DIR = Path(env.str("VAR_DIR", str(BASE_DIR / "var")))

# Django's debug pages and behaviour: on for make run only; production refuses it (agentplatform.E001).
DEBUG = env.bool("DEBUG", DEVELOPMENT)

# --- Secrets and hosts --------------------------------------------------------------------------
_INSECURE_KEY = "django-insecure-development-only-key-never-use-in-production-0000"
SECRET_KEY = env.str("SECRET_KEY", "") or (None if PRODUCTION else _INSECURE_KEY)
if SECRET_KEY is None:
    raise ImproperlyConfigured("Environment variable SECRET_KEY is required when DJANGO_ENV=production.")

# JWTs are signed with their own key, so rotating it logs everyone out without touching sessions,
# password reset links or anything else SECRET_KEY signs (docs/accounts.md).
_INSECURE_JWT_KEY = "django-insecure-jwt-signing-key-for-development-and-tests-only-000000"
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", "") or (None if PRODUCTION else _INSECURE_JWT_KEY)
if JWT_SIGNING_KEY is None:
    raise ImproperlyConfigured("Environment variable JWT_SIGNING_KEY is required when DJANGO_ENV=production.")

# Bearer token for /metrics and /readyz's details; when empty, /metrics answers only requests from
# loopback and /readyz's details only staff sessions.
METRICS_TOKEN = env.str("METRICS_TOKEN", "")

if PRODUCTION:
    # .env.example's placeholders, short or repetitive values and one value reused for two secrets
    # stop the process here, naming the variable (docs/cross-cutting.md, "Secrets").
    check_secrets({"SECRET_KEY": SECRET_KEY, "JWT_SIGNING_KEY": JWT_SIGNING_KEY, "METRICS_TOKEN": METRICS_TOKEN})

# Host names this deployment answers for (comma-separated): required in production, where no default
# can be right; local names elsewhere.
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Environment variable ALLOWED_HOSTS is required when DJANGO_ENV=production.")
# Origins (https://ops.example.com) whose admin form posts pass the CSRF check behind a proxy that
# terminates TLS; none by default, because same-origin posts need none.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", "")

# Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted.
# 0 (default: docker-compose publishes gunicorn with no proxy in front) means the socket peer is the
# client: X-Forwarded-For is ignored entirely (docs/cross-cutting.md, "Client IP behind a proxy").
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", "0", minimum=0, maximum=10)
# The proxies' own addresses (CIDRs or single addresses, comma-separated): X-Forwarded-For and
# X-Forwarded-Proto are read only from a connection whose address is in one of them. Empty by
# default, because which addresses are ours is only known where the app is deployed.
TRUSTED_PROXIES = env.networks("TRUSTED_PROXIES", "")
if TRUSTED_PROXY_COUNT and not TRUSTED_PROXIES:
    raise ImproperlyConfigured(
        f"TRUSTED_PROXY_COUNT={TRUSTED_PROXY_COUNT} needs TRUSTED_PROXIES, the proxies' addresses (CIDRs): "
        "without it anyone could send X-Forwarded-For."
    )
# Whether TRUSTED_PROXY_COUNT was given explicitly: production must say how many proxies sit in
# front (0 is a valid answer), because a wrong default silently trusts or ignores X-Forwarded-For.
# Read by agentplatform.checks (agentplatform.E004).
TRUSTED_PROXY_COUNT_EXPLICIT = "TRUSTED_PROXY_COUNT" in env.source

# --- Applications -------------------------------------------------------------------------------
INSTALLED_APPS = [
    # django.contrib.admin with the project's site (the overview index, navigation grouped by task).
    "agentplatform.admin_site.AgentPlatformAdminConfig",
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
    "rest_framework_simplejwt.token_blacklist",
    "csp",
    "agentplatform.apps.AgentPlatformConfig",
    "accounts",
    "audit",
    "prompts",
    "experiments",
    "monitoring",
    "traces",
    "enrichment",
    "reports",
]

MIDDLEWARE = [
    "agentplatform.middleware.RequestIdMiddleware",
    "agentplatform.middleware.ForwardedHeadersMiddleware",
    "monitoring.middleware.RequestTimingMiddleware",
    "agentplatform.middleware.RequestBodyLimitMiddleware",
    "audit.middleware.AuditBufferMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "agentplatform.middleware.DocumentSecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.lockout.LoginLockMiddleware",
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
    # The covering indexes' INCLUDE columns are a PostgreSQL feature; SQLite builds the index
    # without them (correct, only less covering), so the embedded mode need not warn at every start.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
_test_db_name = env.str("DATABASE_TEST_NAME", "")
if _test_db_name:
    # Lets parallel test runs on one PostgreSQL server use separate test databases.
    _db["TEST"] = {"NAME": _test_db_name}
# A second connection to the same database, used only to write a durable audit event logged inside
# a transaction outside any request or audit_buffer() scope, so the rollback cannot take it along
# (docs/audit.md). SQLite allows one writer at a time, so the embedded mode has none (such a call
# raises).
AUDIT_DURABLE_DATABASE = "audit_durable" if _db["ENGINE"].endswith("postgresql") else ""
DATABASES = {"default": _db}
if AUDIT_DURABLE_DATABASE:
    DATABASES[AUDIT_DURABLE_DATABASE] = {**_db, "CONN_MAX_AGE": 0}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache --------------------------------------------------------------------------------------
# redis://host:6379/0: cache, rate limits, breakers, metrics and (by default) the broker. Required in
# production (shared atomic counters); make run and tests work without it.
REDIS_URL = env.str("REDIS_URL", "")
# Seconds a Redis call may take before the caller treats Redis as down (fail-open/closed paths).
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", "0.5", minimum=0.01)
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's RedisCache, reusing one client per pool (agentplatform/cache.py).
            "BACKEND": "agentplatform.cache.RedisCache",
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


# --- Internationalisation -----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media ---------------------------------------------------------------------------
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

# --- HTTP security (docs/cross-cutting.md) ------------------------------------------------------
# Redirect plain HTTP to HTTPS: on in production (secure cookies and HSTS assume it).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", PRODUCTION)
# Behind a TLS-terminating proxy, its X-Forwarded-Proto says whether the client used HTTPS; the
# header only reaches Django from TRUSTED_PROXIES (agentplatform.middleware.ForwardedHeadersMiddleware).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_COUNT else None
# Health probes come over plain HTTP from the orchestrator, inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION
# Seconds browsers remember to use HTTPS only: one year in production (the preload list's minimum),
# 0 elsewhere so a local http:// server stays reachable.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", "31536000" if PRODUCTION else "0", minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
# Preload is on by default so check --deploy is clean; turn off (0) before the domain is ready for it.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Content-Security-Policy of every page a browser renders (django-csp; JSON and plain-text answers
# carry none, agentplatform.middleware.DocumentSecurityHeadersMiddleware). Scripts and style sheets
# come only from our own static files: no page needs inline script, so an injected <script> or
# onclick= does not run. Style attributes stay allowed (admin templates and server-rendered charts
# set widths and colours with them; they cannot run code). The Swagger UI page adds its own
# exceptions (agentplatform.api_docs).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Permissions-Policy of every page: the admin uses none of these browser features, so no page
# (or anything injected into one) may ask for them.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
)

# Bytes: largest request body accepted by default; batch endpoints raise it per view, never past
# the hard ceiling.
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", str(1024 * 1024), minimum=1024)
MAX_BATCH_REQUEST_BYTES = env.int(
    "MAX_BATCH_REQUEST_BYTES", str(8 * 1024 * 1024), minimum=1024, maximum=10 * 1024 * 1024
)
# Bytes: no view may raise its body limit (``max_body_bytes``) past this, whatever it declares.
MAX_REQUEST_BYTES_CEILING = 10 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BATCH_REQUEST_BYTES

# --- Authentication (docs/accounts.md) ----------------------------------------------------------
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
AUTHENTICATION_BACKENDS = [
    "accounts.lockout.LoginLockBackend",  # first: refuses locked clients before any password check
    "django.contrib.auth.backends.ModelBackend",
]

# JWTs (the key is JWT_SIGNING_KEY above). HS256 is pinned: decoding accepts only it.
# Minutes: short, because an access token is only revocable through the denylist check.
JWT_ACCESS_TOKEN_MINUTES = env.int("JWT_ACCESS_TOKEN_MINUTES", "5", minimum=1, maximum=60)
# Hours: how long a person stays logged in without using the refresh token (one working day).
JWT_REFRESH_TOKEN_HOURS = env.int("JWT_REFRESH_TOKEN_HOURS", "24", minimum=1, maximum=24 * 30)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=JWT_ACCESS_TOKEN_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=JWT_REFRESH_TOKEN_HOURS),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "VERIFYING_KEY": "",
    "ISSUER": "agent-ops-platform",
    "LEEWAY": 0,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_TOKEN_CLASSES": ("accounts.tokens.AccessToken",),
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "CHECK_USER_IS_ACTIVE": True,
}

# Agent API keys.
# Seconds a verified API key (with its user's role and permissions) is trusted from the shared
# cache: the longest a permission change can lag, and the bound on revocation when the cache
# delete on revoke fails. 10 s keeps agents' hot path free of database queries.
API_KEY_CACHE_SECONDS = env.int("API_KEY_CACHE_SECONDS", "10", minimum=0, maximum=300)
# Seconds each process keeps a verified key's snapshot in memory (no cache round trip); another
# process honours a revocation within this time. 0 reads the shared cache on every request.
API_KEY_LOCAL_CACHE_SECONDS = env.float("API_KEY_LOCAL_CACHE_SECONDS", "2", minimum=0)
# Seconds a JWT user's snapshot (status, token version, role, permissions) is trusted from the
# shared cache. Token-version bumps, deactivation and role or group changes of the user rewrite it
# at once; this bounds only a change to a group's own permissions (as API_KEY_CACHE_SECONDS does).
JWT_USER_CACHE_SECONDS = env.int("JWT_USER_CACHE_SECONDS", "10", minimum=0, maximum=300)
# Seconds each process keeps a Bearer request's user snapshot and "this token is not revoked" in
# memory (no cache round trip). Revocation stays immediate: every change is published on a Redis
# channel each process drains before trusting its memory (accounts.cache.MemoInvalidations); this
# bounds only a failed publish and a change to a group's own permissions. 0 reads the shared cache
# on every request.
JWT_USER_LOCAL_CACHE_SECONDS = env.float("JWT_USER_LOCAL_CACHE_SECONDS", "5", minimum=0)
# Seconds: a key's last_used_at is written at most this often (not once per request).
API_KEY_TOUCH_SECONDS = 60

# Brute force (accounts.lockout, device tokens): LOGIN_FAILURE_LIMIT failures, each within
# LOGIN_FAILURE_WINDOW_MINUTES of the previous, lock for LOGIN_LOCKOUT_MINUTES (API token endpoint
# and admin login, even with the right password) the device token they came with, or, from a
# client without one for that username, untrusted attempts at the username and from the client IP.
LOGIN_LOCKOUT_ENABLED = env.bool("LOGIN_LOCKOUT_ENABLED", True)
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", "5", minimum=1, maximum=100)
LOGIN_FAILURE_WINDOW_MINUTES = env.int("LOGIN_FAILURE_WINDOW_MINUTES", "15", minimum=1)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", "15", minimum=1)
# Days a device token (issued at every successful login) keeps its client trusted for its
# username: about half a year, so a person who logs in monthly is never a stranger.
DEVICE_TOKEN_DAYS = env.int("DEVICE_TOKEN_DAYS", "180", minimum=1, maximum=730)

# --- REST framework and the API schema ----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["agentplatform.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["agentplatform.throttling.ScopedRateLimit"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Every API 401/403 goes through accounts' wrapper of the platform handler
    # (agentplatform.errors.api_exception_handler): budgeted, and 403s audited once a minute.
    "EXCEPTION_HANDLER": "accounts.handlers.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Whether /api/schema/ and /api/docs/ answer without a login (agentplatform.api_docs). Off in
# production: the schema maps every endpoint and parameter for whoever asks.
API_DOCS_PUBLIC = env.bool("API_DOCS_PUBLIC", not PRODUCTION)
SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Ops Platform API",
    "DESCRIPTION": "Prompt experiments, audit, metrics and enrichment for a fleet of LLM agents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # No call to swagger.io's online validator: the page stays within its same-origin policy.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # One schema enum for the metric catalogue, used by primary and guardrail metric fields alike.
    "ENUM_NAME_OVERRIDES": {
        "MetricEnum": "experiments.metric_catalogue.METRIC_NAMES",
        "SpanStatusEnum": "traces.models.SpanStatus",
    },
}

# --- Rate limits (DRF throttle scopes; agentplatform.ratelimit, docs/cross-cutting.md) ----------
# Per throttle scope (a view's throttle_scope), "N/period"; each is overridable as
# RATE_LIMIT_<SCOPE> with dots as underscores, e.g. RATE_LIMIT_PROMPTS_RESOLVE=6000/m.
_DEFAULT_RATE_LIMITS = {
    "auth.token": "10/m",
    "auth.refresh": "30/m",
    "auth.me": "300/m",
    # 401/403 answers per caller (API key, user, else client IP): past the budget they become 429,
    # so a caller refused again and again is slowed down, and its audit tally stays one row a minute.
    "auth.denied": "30/m",
    "prompts.resolve": "6000/m",
    # GET prompts/{key}/labels/{label}: agents outside any experiment call it on every turn.
    "prompts.label": "6000/m",
    "prompts.read": "600/m",
    "prompts.write": "60/m",
    "experiments.results": "600/m",
    # POST experiments/exposures: an SDK client sends at most one batch a second per process.
    "experiments.exposures": "600/m",
    "experiments.read": "600/m",
    "experiments.write": "60/m",
    "audit.write": "600/m",
    "audit.read": "300/m",
    "monitoring.write": "600/m",
    "monitoring.read": "300/m",
    # POST otel/v1/traces: an exporter sends a batch every few seconds per process.
    "traces.ingest": "1200/m",
    "traces.read": "300/m",
    "traces.write": "60/m",
    "enrichment.context": "120/m",
    "documents.search": "300/m",
    "reports.read": "120/m",
}
# Serves /api/v1/bench/* (the benchmark harness's baseline views); never on in a real deployment.
BENCH_ENDPOINTS = env.bool("BENCH_ENDPOINTS", False)
RATE_LIMITS = {
    group: env.rate("RATE_LIMIT_" + group.upper().replace(".", "_"), default)
    for group, default in _DEFAULT_RATE_LIMITS.items()
}
if BENCH_ENDPOINTS:
    # The benchmark's rate-limited no-op: counted on every request, never reached.
    RATE_LIMITS["bench.noop"] = "1000000000/h"
for _group, _rate in RATE_LIMITS.items():
    parse_rate(_rate, name=_group)
# 0 turns every rate limit off: for benchmarks of raw throughput only, never a deployment.
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", True)
# Groups whose requests are refused (503) rather than served unlimited while the cache is down:
# glob patterns. Login fails closed (an outage must not open the door to password guessing);
# agent endpoints fail open (an outage must not stop the fleet).
RATE_LIMIT_FAIL_CLOSED = env.list("RATE_LIMIT_FAIL_CLOSED", "auth.*")
# Seconds the rate limiter skips an unreachable cache before trying again (so an outage costs
# one socket timeout every few seconds, not one per request).
RATE_LIMIT_CACHE_RETRY_SECONDS = env.float("RATE_LIMIT_CACHE_RETRY_SECONDS", "5", minimum=0)
# Largest share of a limit one process reserves from Redis at a time (agentplatform/ratelimit.py,
# "Leases"): 0.01 lets a busy caller skip 99 of 100 round trips, at the price of being refused up
# to 1 % of the limit early per process it is served by. 0 counts every request in Redis.
RATE_LIMIT_LEASE_SHARE = env.float("RATE_LIMIT_LEASE_SHARE", "0.01", minimum=0)

# --- Outbound HTTP and circuit breakers (docs/cross-cutting.md) ---------------------------------
# Outbound HTTP (agentplatform.http): seconds per phase; every client bounds all four. Connect and
# pool are short so a dead host is noticed fast; read is what a slow but healthy API needs.
HTTP_CONNECT_TIMEOUT = env.float("HTTP_CONNECT_TIMEOUT", "3", minimum=0.1)
HTTP_READ_TIMEOUT = env.float("HTTP_READ_TIMEOUT", "10", minimum=0.1)
HTTP_WRITE_TIMEOUT = env.float("HTTP_WRITE_TIMEOUT", "10", minimum=0.1)
HTTP_POOL_TIMEOUT = env.float("HTTP_POOL_TIMEOUT", "3", minimum=0.1)
# Seconds an MCP server's event stream may stay silent before the session is dropped (the SDK's
# own default is 300 s; agents wait on these calls, so a minute).
MCP_SSE_READ_TIMEOUT = env.float("MCP_SSE_READ_TIMEOUT", "60", minimum=1)
# User-Agent of every outbound call, so the sites and APIs we call can tell who we are.
HTTP_USER_AGENT = env.str("HTTP_USER_AGENT", "AgentOpsPlatform/1.0")

# Circuit breakers (agentplatform.breakers): "default" applies to every name without its own
# entry. fail_max: consecutive failures that open it; reset_timeout: seconds open before a trial
# call; success_threshold: successful trials that close it; max_retry_after: seconds, the longest
# an upstream Retry-After may hold it open.
CIRCUIT_BREAKERS: dict[str, dict] = {
    "default": {
        "fail_max": env.int("CIRCUIT_BREAKER_FAIL_MAX", "5", minimum=1),
        "reset_timeout": env.float("CIRCUIT_BREAKER_RESET_TIMEOUT", "30", minimum=1),
        "success_threshold": env.int("CIRCUIT_BREAKER_SUCCESS_THRESHOLD", "1", minimum=1),
        "max_retry_after": env.float("CIRCUIT_BREAKER_MAX_RETRY_AFTER", "300", minimum=1),
    },
    # The enrichment web provider fetches arbitrary sites: a handful of slow ones is normal and
    # must not stop every page fetch, so its breaker opens only after a long run of failures, and
    # retries sooner.
    "enrichment.web": {"fail_max": 20, "reset_timeout": 15.0},
}
# Where breaker state is shared between processes; empty = each process keeps its own.
CIRCUIT_BREAKER_REDIS_URL = env.str("CIRCUIT_BREAKER_REDIS_URL", REDIS_URL)
CIRCUIT_BREAKER_KEY_PREFIX = env.str("CIRCUIT_BREAKER_KEY_PREFIX", "ap:breaker")
# Seconds between attempts to reach Redis again once it failed (meanwhile the local state serves,
# and calls don't each wait for a socket timeout).
CIRCUIT_BREAKER_REDIS_RETRY_SECONDS = env.float("CIRCUIT_BREAKER_REDIS_RETRY_SECONDS", "5", minimum=0)

# --- Celery -------------------------------------------------------------------------------------
# Broker: CELERY_BROKER_URL, else REDIS_URL, else (make run) a filesystem broker under VAR_DIR.
# The filesystem URL names a host only so that kombu does not warn "No hostname was supplied" in
# each of make run's three processes (the transport ignores it).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", REDIS_URL or ("memory://" if TESTING else "filesystem://localhost//"))
if PRODUCTION and CELERY_BROKER_URL.startswith(("filesystem", "memory")):
    raise ImproperlyConfigured("Set CELERY_BROKER_URL or REDIS_URL when DJANGO_ENV=production.")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # The broadcast (pidbox) exchange's files; kombu's default is "control" in the working directory.
        "control_folder": str(_broker_dir / "control"),
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
# 1 runs tasks inline in the caller (debugging only): off, because a worker is part of the design.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
DJANGO_CELERY_BEAT_TZ_AWARE = True
# Workers log through LOGGING below (JSON with the request id restored from the task's headers,
# agentplatform.task_context) instead of Celery replacing the root logger's handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Logging ------------------------------------------------------------------------------------
# JSON lines in production (one object per record, for log shippers); readable lines otherwise.
LOG_FORMAT = env.choice("LOG_FORMAT", ("json", "text"), "json" if PRODUCTION else "text")
# Root log level: INFO records start-up, jobs and degraded dependencies without per-request noise.
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
if DEVELOPMENT and LOG_LEVEL != "DEBUG":
    # make run: the worker's "Task ... received" and "Task ... succeeded" lines, four per minute-job
    # every minute, say what the job runner's own line ("job metrics_rollup ... succeeded") says.
    for _quiet in ("celery.worker.strategy", "celery.app.trace"):
        LOGGING["loggers"][_quiet] = {"level": "WARNING"}

# --- Audit log (docs/audit.md) ------------------------------------------------------------------
# Days an audit event stays in the table (by recorded_at); older sealed events are archived to a
# gzipped CSV under AUDIT_EXPORT_DIR, then deleted. One year: the usual audit review horizon.
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", "365", minimum=1)
# Seconds an event must have been in the table before it is sealed: sequence ids commit out of
# order, and an insert transaction of the audit writer lasts milliseconds, so 5 s is ample.
AUDIT_SEAL_DELAY_SECONDS = env.int("AUDIT_SEAL_DELAY_SECONDS", "5", minimum=1)
# Events sealed per transaction (rows): bounds lock time and memory of one sealing step.
AUDIT_SEAL_BATCH_SIZE = env.int("AUDIT_SEAL_BATCH_SIZE", "5000", minimum=1)
# Events deleted per retention transaction (rows): short transactions, no long table lock.
AUDIT_RETENTION_BATCH_SIZE = env.int("AUDIT_RETENTION_BATCH_SIZE", "5000", minimum=1)
# Bytes (UTF-8 JSON) of an event's details before they are replaced by a truncated preview.
AUDIT_DETAILS_MAX_BYTES = env.int("AUDIT_DETAILS_MAX_BYTES", "8192", minimum=256)
# Events a scope (request, audit_buffer block) holds before writing what is committed (rows).
AUDIT_BUFFER_MAX_EVENTS = env.int("AUDIT_BUFFER_MAX_EVENTS", "1000", minimum=1)
# Whether buffered (non-durable) audit events are committed without waiting for PostgreSQL's WAL
# flush: the rows are visible at once and survive any crash of the application; only a crash of
# the database server within ~0.6 s of the commit can lose them. Durable events and the batch API
# always wait. On (1) because a disk flush per request would cost more than the request itself.
AUDIT_ASYNC_COMMIT = env.bool("AUDIT_ASYNC_COMMIT", True)
# Where a request's committed audit events are inserted: "background" hands them to a per-process
# writer thread that inserts every request's events together every AUDIT_FLUSH_INTERVAL_SECONDS
# (the INSERT leaves the request path; a SIGKILLed process loses at most one interval's events);
# "request" inserts them at the end of each request (nothing is held after the response). Durable
# events, the batch API, Celery tasks and audit_buffer() blocks always write synchronously.
# Background for web processes by default; tests run "request" unless a test opts in.
AUDIT_WRITE_MODE = env.choice(
    "AUDIT_WRITE_MODE", ("background", "request"), default="request" if TESTING else "background"
)
# Seconds between the background writer's inserts: the loss window on a SIGKILL, and the delay
# before a request's events are readable. 1 s (the flush period of log shippers such as Fluent
# Bit) batches a second of requests per COPY at load, for less database CPU per event than shorter
# intervals (measured in bench/README.md and docs/audit.md).
AUDIT_FLUSH_INTERVAL_SECONDS = env.float("AUDIT_FLUSH_INTERVAL_SECONDS", "1", minimum=0.001)
# Events the background queue may hold (per process) before requests write their own events
# synchronously (back-pressure when the database is slow or down); ~2 KB each, so 20,000 is ~40 MB.
AUDIT_BACKGROUND_MAX_EVENTS = env.int("AUDIT_BACKGROUND_MAX_EVENTS", "20000", minimum=1)
# Longest wait (seconds) between the background writer's retries of a failing insert (it doubles).
AUDIT_BACKGROUND_RETRY_MAX_SECONDS = env.float("AUDIT_BACKGROUND_RETRY_MAX_SECONDS", "5", minimum=0.01)
# Seconds a stopping process spends draining the background queue; shorter than gunicorn's
# graceful timeout (20 s). What is still unstored then goes to AUDIT_EXPORT_DIR/audit/undelivered.jsonl.
AUDIT_BACKGROUND_DRAIN_SECONDS = env.float("AUDIT_BACKGROUND_DRAIN_SECONDS", "10", minimum=0.1)
# Retries of a failed audit insert (count) and the first backoff (seconds, doubling each retry).
AUDIT_WRITE_RETRIES = env.int("AUDIT_WRITE_RETRIES", "3", minimum=0, maximum=10)
AUDIT_WRITE_RETRY_BACKOFF_SECONDS = env.float("AUDIT_WRITE_RETRY_BACKOFF_SECONDS", "0.05", minimum=0)
# Events per page of GET /api/v1/audit/events: default and cap (rows).
AUDIT_PAGE_SIZE = env.int("AUDIT_PAGE_SIZE", "50", minimum=1)
AUDIT_MAX_PAGE_SIZE = env.int("AUDIT_MAX_PAGE_SIZE", "500", minimum=1)
# Where archives, period exports and the chain-head file go (the admin lists and serves them).
AUDIT_EXPORT_DIR = Path(env.str("AUDIT_EXPORT_DIR", str(MEDIA_ROOT / "exports")))

# --- Experiments (docs/experiments.md) ----------------------------------------------------------
# Seconds between a process's checks of the shared experiments version key: how long a start,
# pause or stop takes to reach every web process (about one second is what operators expect).
EXPERIMENTS_SNAPSHOT_CHECK_SECONDS = env.float("EXPERIMENTS_SNAPSHOT_CHECK_SECONDS", "1.0", minimum=0.0)
# Entries: (experiment, user) pairs a process remembers having buffered, so returning users cost
# no Redis write; ~100 bytes each, so 200,000 is ~20 MB per process at most.
EXPERIMENTS_EXPOSURE_SEEN_MAX = env.int("EXPERIMENTS_EXPOSURE_SEEN_MAX", "200000", minimum=1)
# Rows moved from the exposure buffer to the database per INSERT (one statement stays well under
# PostgreSQL's 65,535 bind parameters at 4 per row).
EXPERIMENTS_EXPOSURE_FLUSH_BATCH = env.int("EXPERIMENTS_EXPOSURE_FLUSH_BATCH", "5000", minimum=1, maximum=15000)
# Seconds between a process's exposure inserts (experiments/services/exposures.py): how stale the analysis
# population may be, and what a SIGKILLed process loses (re-recorded on those users' next resolve).
# 1 s, as the audit log's background writer.
EXPERIMENTS_EXPOSURE_FLUSH_SECONDS = env.float("EXPERIMENTS_EXPOSURE_FLUSH_SECONDS", "1", minimum=0.01)
# Exposures a process may hold unstored (rows, ~150 bytes each: 50,000 is ~8 MB) before a resolve
# inserts its own (back-pressure while the database is slow or down).
EXPERIMENTS_EXPOSURE_BUFFER_MAX_ROWS = env.int("EXPERIMENTS_EXPOSURE_BUFFER_MAX_ROWS", "50000", minimum=1)
# Seconds a stopping process spends storing its pending exposures: with the audit writer's drain
# (AUDIT_BACKGROUND_DRAIN_SECONDS, 10) under gunicorn's graceful timeout (20 s).
EXPERIMENTS_EXPOSURE_DRAIN_SECONDS = env.float("EXPERIMENTS_EXPOSURE_DRAIN_SECONDS", "5", minimum=0.1)
# Insert from a thread per process; tests turn it off (their data sits in a transaction the
# thread's connection cannot see) and flush explicitly in the test's thread.
EXPERIMENTS_EXPOSURE_BACKGROUND_FLUSH = env.bool("EXPERIMENTS_EXPOSURE_BACKGROUND_FLUSH", not TESTING)
# Rows per results request: the API contract (1 to 1,000); larger batches answer 413.
EXPERIMENTS_RESULTS_MAX_ROWS = env.int("EXPERIMENTS_RESULTS_MAX_ROWS", "1000", minimum=1, maximum=5000)
# Rows per reported-exposures request (POST experiments/exposures, the SDK's): 1 to 1,000, as results.
EXPERIMENTS_EXPOSURES_MAX_ROWS = env.int("EXPERIMENTS_EXPOSURES_MAX_ROWS", "1000", minimum=1, maximum=5000)

# --- Experiment statistics (docs/statistics.md) -------------------------------------------------
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
# PostgreSQL work_mem for the rollup's per-user GROUP BYs (SET LOCAL, one transaction): 4 MB (the
# server default) spills a million users to disk; 256MB keeps them in memory. Empty: default. (The
# raw-results path streams users from an index and needs no work_mem.)
EXPERIMENT_STATS_WORK_MEM = env.str("EXPERIMENT_STATS_WORK_MEM", "256MB")

# --- Monitoring (docs/monitoring.md) ------------------------------------------------------------
# Where open minutes of latency histograms accumulate: "redis" (atomic HINCRBY, any number of
# processes and hosts) or "database" (UPSERT increments into monitoring_countercell; the embedded
# mode, shared by web and worker through SQLite). Defaults to redis whenever REDIS_URL is set.
MONITORING_STORE = env.choice("MONITORING_STORE", ("redis", "database"), "redis" if REDIS_URL else "database")
# Seconds between flushes of a process's buffered observations (one pipeline per flush): the most a
# crashed process can lose. 1 s keeps request overhead to a dict update.
MONITORING_FLUSH_INTERVAL_SECONDS = env.float("MONITORING_FLUSH_INTERVAL_SECONDS", "1.0", minimum=0.05)
# Flush from a background thread per process; tests turn it off and flush explicitly.
MONITORING_BACKGROUND_FLUSH = env.bool("MONITORING_BACKGROUND_FLUSH", not TESTING)
# Operations acknowledged by POST monitoring/operations wait in each process's writer
# (monitoring/operations.py), never in Redis: seconds between its writes to the database (what a
# process killed outright can lose), requests' batches it holds at most before a request writes its
# own, and seconds it may take to drain when the process exits. Tests store them in the request.
MONITORING_OPERATIONS_FLUSH_SECONDS = env.float("MONITORING_OPERATIONS_FLUSH_SECONDS", "1", minimum=0.01)
MONITORING_OPERATIONS_BUFFER_MAX_ITEMS = env.int("MONITORING_OPERATIONS_BUFFER_MAX_ITEMS", "20000", minimum=1)
MONITORING_OPERATIONS_DRAIN_SECONDS = env.float("MONITORING_OPERATIONS_DRAIN_SECONDS", "5", minimum=0.1)
MONITORING_OPERATIONS_BACKGROUND_FLUSH = env.bool("MONITORING_OPERATIONS_BACKGROUND_FLUSH", not TESTING)
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

# --- Traces and cost (docs/traces.md) ------------------------------------------------------------
# Days of spans and traces kept; on PostgreSQL whole daily partitions are dropped after it.
TRACE_RETENTION_DAYS = env.int("TRACE_RETENTION_DAYS", "30", minimum=1, maximum=3650)
# Store message content (gen_ai.input.messages / output.messages, older span events): off by
# default, since prompts and answers carry users' data. Secrets are masked as in the audit log.
TRACE_STORE_CONTENT = env.bool("TRACE_STORE_CONTENT", False)
# Bytes of stored content per span (JSON), and of the other attributes kept per span.
TRACE_CONTENT_MAX_BYTES = env.int("TRACE_CONTENT_MAX_BYTES", "32768", minimum=1024)
TRACE_ATTRIBUTES_MAX_BYTES = env.int("TRACE_ATTRIBUTES_MAX_BYTES", "8192", minimum=512)
# Which span attributes name the user, first found wins (comma-separated).
TRACE_USER_ATTRIBUTES = tuple(
    name.strip()
    for name in env.str("TRACE_USER_ATTRIBUTES", "user.id,enduser.id,session.id").split(",")
    if name.strip()
)
# Largest OTLP request body accepted (bytes, after gzip is undone).
TRACE_MAX_REQUEST_BYTES = env.int("TRACE_MAX_REQUEST_BYTES", str(8 * 1024 * 1024), minimum=64 * 1024)
# Traces per page of GET /api/v1/traces: the default, and the most a caller may ask for.
TRACE_PAGE_SIZE = env.int("TRACE_PAGE_SIZE", "50", minimum=1)
TRACE_MAX_PAGE_SIZE = env.int("TRACE_MAX_PAGE_SIZE", "500", minimum=1)
# Spans a trace page (admin waterfall, API detail) shows at most: bounds one request's work.
TRACE_MAX_SPANS_SHOWN = env.int("TRACE_MAX_SPANS_SHOWN", "5000", minimum=100)
# Spans a reprice job reads, prices and writes back per transaction (progress advances per chunk).
TRACE_REPRICE_CHUNK = env.int("TRACE_REPRICE_CHUNK", "5000", minimum=100)
# Seconds a reprice task may run (soft limit; the hard one is a minute later): it walks every span
# since its date, millions on a busy installation, far past the default task limit.
TRACE_REPRICE_TIME_LIMIT = env.int("TRACE_REPRICE_TIME_LIMIT", "7200", minimum=60)

# --- Enrichment (docs/enrichment.md) ------------------------------------------------------------
# Milliseconds: the whole POST /enrichment/context call returns by its deadline; agents may ask
# for less (deadline_ms) but never more than the maximum, so one call cannot hold a worker long.
ENRICHMENT_DEFAULT_DEADLINE_MS = env.int("ENRICHMENT_DEFAULT_DEADLINE_MS", "8000", minimum=100)
ENRICHMENT_MAX_DEADLINE_MS = env.int("ENRICHMENT_MAX_DEADLINE_MS", "20000", minimum=100)
# Count: longest list accepted per request part (urls, queries, videos, scrape, map, crawl, mcp).
ENRICHMENT_MAX_TARGETS = env.int("ENRICHMENT_MAX_TARGETS", "10", minimum=1, maximum=50)
# Pages: the most a crawl may ask for (Supadata bills per page).
ENRICHMENT_CRAWL_MAX_PAGES = env.int("ENRICHMENT_CRAWL_MAX_PAGES", "25", minimum=1)
# Characters: longest text returned per item; agents need context, not whole books.
ENRICHMENT_TEXT_MAX_CHARS = env.int("ENRICHMENT_TEXT_MAX_CHARS", "20000", minimum=100)
# SSRF exceptions: comma-separated CIDRs (10.20.0.0/16) or exact host:port (intranet:8443).
ENRICHMENT_ALLOWED_PRIVATE = env.list("ENRICHMENT_ALLOWED_PRIVATE", "")
# Bytes: largest page fetched (2 MiB: far above any article, far below a memory problem).
ENRICHMENT_PAGE_MAX_BYTES = env.int("ENRICHMENT_PAGE_MAX_BYTES", str(2 * 1024 * 1024), minimum=1024)
# Hops: redirects followed per page, each one re-checked by the SSRF guard.
ENRICHMENT_MAX_REDIRECTS = env.int("ENRICHMENT_MAX_REDIRECTS", "5", minimum=0, maximum=20)
# Seconds: per-provider call timeouts (each also bounded by the call's deadline).
ENRICHMENT_WEB_TIMEOUT = env.float("ENRICHMENT_WEB_TIMEOUT", "6", minimum=0.1)
ENRICHMENT_SEARCH_TIMEOUT = env.float("ENRICHMENT_SEARCH_TIMEOUT", "5", minimum=0.1)
ENRICHMENT_SUPADATA_TIMEOUT = env.float("ENRICHMENT_SUPADATA_TIMEOUT", "15", minimum=0.1)
ENRICHMENT_MCP_TIMEOUT = env.float("ENRICHMENT_MCP_TIMEOUT", "10", minimum=0.1)
# A provider call cut by the request's deadline counts against the provider's breaker when it had
# waited at least this long (a short deadline_ms says nothing about the provider; seconds of silence
# do). Calls that reach the provider's own timeout always count.
ENRICHMENT_SLOW_CALL_SECONDS = env.float("ENRICHMENT_SLOW_CALL_SECONDS", "3", minimum=0.1)
# Seconds: cache lifetimes per provider. Pages and transcripts change rarely; search results
# age faster; MCP tool calls may have side effects, so they are not cached unless asked.
ENRICHMENT_CACHE_TTL = {
    "web": env.int("ENRICHMENT_CACHE_TTL_WEB", "3600", minimum=0),
    "search": env.int("ENRICHMENT_CACHE_TTL_SEARCH", "900", minimum=0),
    "supadata": env.int("ENRICHMENT_CACHE_TTL_SUPADATA", "3600", minimum=0),
    "youtube": env.int("ENRICHMENT_CACHE_TTL_YOUTUBE", "86400", minimum=0),
    "mcp": env.int("ENRICHMENT_CACHE_TTL_MCP", "0", minimum=0),
    "mcp_tools": env.int("ENRICHMENT_CACHE_TTL_MCP_TOOLS", "300", minimum=0),
}
# SearxNG-style search (GET {base}/search?q=...&format=json); the fallback serves when the first
# fails or its breaker is open. Empty = not configured.
SEARCH_BASE_URL = env.str("SEARCH_BASE_URL", "")
SEARCH_FALLBACK_BASE_URL = env.str("SEARCH_FALLBACK_BASE_URL", "")
# Count: results kept per query.
SEARCH_MAX_RESULTS = env.int("SEARCH_MAX_RESULTS", "5", minimum=1, maximum=50)
# Supadata (web scrape/map/crawl, transcripts); no key = not configured.
SUPADATA_BASE_URL = env.str("SUPADATA_BASE_URL", "https://api.supadata.ai/v1")
SUPADATA_API_KEY = env.str("SUPADATA_API_KEY", "")
# Seconds between polls of a Supadata crawl/transcript job (doubling up to 4x, within the deadline).
SUPADATA_POLL_INTERVAL = env.float("SUPADATA_POLL_INTERVAL", "1.0", minimum=0.001)
# MCP servers, name=url pairs separated by commas (operator configuration, trusted).
MCP_SERVERS = dict(item.split("=", 1) for item in env.list("MCP_SERVERS", "") if "=" in item)
# Data collection: attempts per source run for transient errors, and the first backoff
# (seconds, doubling per attempt) before a re-enqueued retry.
ENRICHMENT_COLLECT_MAX_ATTEMPTS = env.int("ENRICHMENT_COLLECT_MAX_ATTEMPTS", "4", minimum=1, maximum=10)
ENRICHMENT_COLLECT_BACKOFF_SECONDS = env.int("ENRICHMENT_COLLECT_BACKOFF_SECONDS", "60", minimum=1)
# Seconds: deadline for one source's collection fetch.
ENRICHMENT_COLLECT_TIMEOUT = env.float("ENRICHMENT_COLLECT_TIMEOUT", "30", minimum=1)
# Count: items kept from one feed or JSON source per run.
ENRICHMENT_COLLECT_MAX_ITEMS = env.int("ENRICHMENT_COLLECT_MAX_ITEMS", "200", minimum=1)

# --- Jobs and reports (docs/jobs.md) ------------------------------------------------------------
# Retries of a job after a transient error (database/Redis connection, DependencyUnavailable);
# 3 covers a failover or a restart without hammering a dependency that is really down.
JOBS_MAX_RETRIES = env.int("JOBS_MAX_RETRIES", "3", minimum=0, maximum=10)
# Seconds before the first retry, doubled each time (30, 60, 120) and capped at the maximum.
JOBS_RETRY_BACKOFF_SECONDS = env.float("JOBS_RETRY_BACKOFF_SECONDS", "30", minimum=0)
JOBS_RETRY_BACKOFF_MAX_SECONDS = env.float("JOBS_RETRY_BACKOFF_MAX_SECONDS", "600", minimum=0)
# Seconds: default soft limit (the job gets SoftTimeLimitExceeded and fails cleanly) and hard
# limit (the worker kills it) of a job; reports over a month of data fit well inside 10 minutes.
JOBS_SOFT_TIME_LIMIT = env.int("JOBS_SOFT_TIME_LIMIT", "540", minimum=1)
JOBS_TIME_LIMIT = env.int("JOBS_TIME_LIMIT", "600", minimum=2)
# Seconds: with an embedded broker (make run), "run now" queues only if the local worker's
# heartbeat (every 60 s) is younger than this; otherwise it runs in the web process.
JOBS_EMBEDDED_WORKER_MAX_AGE = env.int("JOBS_EMBEDDED_WORKER_MAX_AGE", "180", minimum=60)
# Rows: creators kept in one creator-analytics report (the most active first); bounds the JSON.
REPORTS_MAX_CREATORS = env.int("REPORTS_MAX_CREATORS", "1000", minimum=10)
