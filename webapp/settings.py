"""Settings for Arbor, read strictly from the environment.

Every knob is an environment variable (a `.env` file in the project root is
read too, which is how `make run` keeps its generated secret). Values are
parsed strictly: a malformed value stops the process with the variable's name
in the message instead of being silently replaced by a default.
"""

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env(eager=True)
env.read_env(str(BASE_DIR / ".env"), recurse=False, override=False)

try:
    SECRET_KEY = env.str("ARBOR_SECRET_KEY")
except EnvError as exc:
    raise ImproperlyConfigured(
        "ARBOR_SECRET_KEY is not set. Put it in the environment or in .env "
        "(`make .env` writes one with a fresh random key)."
    ) from exc
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("ARBOR_SECRET_KEY must be at least 32 characters long.")

DEBUG = env.bool("ARBOR_DEBUG", False)
ALLOWED_HOSTS = env.list("ARBOR_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("ARBOR_CSRF_TRUSTED_ORIGINS", [])
# Behind a TLS-terminating proxy: secure cookies and HSTS.
ARBOR_TLS = env.bool("ARBOR_TLS", False)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_vite",
    "csp",
    # Serves the API docs' Swagger UI from static files instead of a CDN.
    "ninja",
    "webapp.common.apps.CommonConfig",
    "webapp.accounts.apps.AccountsConfig",
    "webapp.serving.apps.ServingConfig",
    "webapp.chat.apps.ChatConfig",
    "webapp.traces.apps.TracesConfig",
    "webapp.audit.apps.AuditConfig",
    "webapp.gateway.apps.GatewayConfig",
    "webapp.annotation.apps.AnnotationConfig",
    # Login rate limiting (webapp/accounts/login.py).
    "axes",
]

# Django's own middleware (and django-csp's) through webapp.common.middleware:
# the same classes, with their hooks run on the event loop under ASGI. Django's
# deploy checks for three of them match exact paths: webapp.common.checks makes
# them subclass-aware (arbor.W001-W003).
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]
MIDDLEWARE = [
    "webapp.common.middleware.SecurityMiddleware",
    "webapp.common.middleware.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "webapp.common.middleware.SessionMiddleware",
    "webapp.common.middleware.CommonMiddleware",
    "webapp.common.middleware.ApiErrorShapeMiddleware",
    "webapp.common.middleware.CsrfViewMiddleware",
    "webapp.common.middleware.AuthenticationMiddleware",
    "webapp.common.middleware.MessageMiddleware",
    "webapp.common.middleware.XFrameOptionsMiddleware",
    "webapp.common.middleware.CSPMiddleware",
    # Last, as axes requires: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# Axes first: it refuses sign-ins of a locked-out username+IP before any password check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webapp" / "templates"],
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

# Postgres through psycopg 3 with Django's connection pool. The pool is what
# lets a worker holding hundreds of streams use a handful of connections: code
# takes a connection for each flush and gives it back (see chat/generation.py).
DATABASES = {"default": env.dj_db_url("DATABASE_URL", "postgres://root@127.0.0.1:5432/arbor")}
DATABASES["default"]["CONN_MAX_AGE"] = 0
if env.bool("ARBOR_DB_POOL", True):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("ARBOR_DB_POOL_MAX", 10),
        "timeout": 10,
    }
    # With the pool, Django turns this into psycopg_pool's `check`: a pooled
    # connection is tested (one empty round trip) before it is handed out. After a
    # Postgres restart the pool would otherwise hand out dead connections and the
    # first request on each would fail (issue 7, faults).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Prepared statements for the hot paths' own SQL (common.db.run_prepared: a send's
# admission, inserts and quota, a worker's claim), which Postgres would otherwise
# plan on every run. Django's own queries are never prepared. Off for a pooler
# that cannot keep them (PgBouncer in transaction mode before 1.21, or without
# `max_prepared_statements`).
if env.bool("ARBOR_DB_PREPARED", True):
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
DATABASES["default"]["TEST"] = {"NAME": env.str("ARBOR_TEST_DATABASE", "test_arbor")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
}

# Celery: Redis broker. Generation tasks are late-acked with prefetch 1 so a
# worker that dies gives its message back; the claim in the task makes a
# redelivery harmless.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
CELERY_TASK_IGNORE_RESULT = True
# Off: with it on, a worker cannot survive a broker restart (celery#9250: the
# worker exits after its running tasks). A message redelivered after a lost
# connection is harmless here: the task's claim finds the response taken.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ROUTES = {
    "webapp.chat.tasks.generate_response": {"queue": "generation"},
    # Batch generation for annotation campaigns has its own queue, which every worker
    # consumes too; ARBOR_BATCH_CONCURRENCY keeps it from crowding out chats.
    "webapp.annotation.tasks.generate_batch_response": {"queue": "batch"},
    "webapp.annotation.tasks.pump_batches": {"queue": "batch"},
    # Export snapshots: the default queue, which every worker consumes.
    "webapp.annotation.tasks.write_snapshot": {"queue": "celery"},
    "webapp.annotation.tasks.fail_stale_snapshots": {"queue": "celery"},
}
CELERY_BEAT_SCHEDULE = {
    "reap-stale-responses": {
        "task": "webapp.chat.tasks.reap_stale_responses",
        "schedule": env.float("ARBOR_REAPER_INTERVAL_S", 10.0),
    },
    "check-endpoints": {
        "task": "webapp.serving.tasks.check_endpoints",
        "schedule": env.float("ARBOR_HEALTH_INTERVAL_S", 15.0),
    },
    "release-stale-reservations": {
        "task": "webapp.accounts.tasks.release_stale_reservations",
        "schedule": 300.0,
    },
    "pump-batches": {
        "task": "webapp.annotation.tasks.pump_batches",
        "schedule": env.float("ARBOR_BATCH_PUMP_INTERVAL_S", 30.0),
    },
    # Claims also expire leases of their campaign; this catches idle campaigns.
    "release-expired-leases": {
        "task": "webapp.annotation.tasks.release_expired_leases",
        "schedule": 60.0,
    },
    "fail-stale-snapshots": {
        "task": "webapp.annotation.tasks.fail_stale_snapshots",
        "schedule": 60.0,
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# Login rate limiting (django-axes, see webapp/accounts/login.py): lock a username+IP
# pair out for a cool-off after this many failed sign-ins.
AXES_FAILURE_LIMIT = env.int("ARBOR_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("ARBOR_LOGIN_COOLOFF_MINUTES", 15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "webapp.accounts.login.lockout_response"
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# Failed attempts only: no access log row for every successful sign-in.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
FRONTEND_DIST = BASE_DIR / "frontend" / "dist"
STATICFILES_DIRS = [FRONTEND_DIST]
# Serve straight from the finders: `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
DJANGO_VITE = {
    "default": {
        "dev_mode": False,
        "manifest_path": FRONTEND_DIST / "manifest.json",
    }
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = ARBOR_TLS
CSRF_COOKIE_SECURE = ARBOR_TLS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# No inline scripts or styles anywhere: model output is untrusted text, and the
# browser app sets styles only through the CSSOM.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
if ARBOR_TLS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31536000

# Arbor's own knobs.
ARBOR_MAX_PROMPT_CHARS = env.int("ARBOR_MAX_PROMPT_CHARS", 32_000)
ARBOR_MAX_FRAME_BYTES = env.int("ARBOR_MAX_FRAME_BYTES", 256 * 1024)
ARBOR_MAX_SUBSCRIPTIONS_PER_SOCKET = env.int("ARBOR_MAX_SUBSCRIPTIONS_PER_SOCKET", 32)
# Event log: deltas are coalesced into batches of this many milliseconds.
ARBOR_COALESCE_MS = env.int("ARBOR_COALESCE_MS", 25)
ARBOR_FLUSH_INTERVAL_S = env.float("ARBOR_FLUSH_INTERVAL_S", 1.0)
ARBOR_EVENT_LOG_TTL_S = env.int("ARBOR_EVENT_LOG_TTL_S", 3600)
ARBOR_ENGINE_CONNECT_TIMEOUT_S = env.float("ARBOR_ENGINE_CONNECT_TIMEOUT_S", 5.0)
ARBOR_ENGINE_STALL_TIMEOUT_S = env.float("ARBOR_ENGINE_STALL_TIMEOUT_S", 60.0)
ARBOR_GENERATION_MAX_S = env.float("ARBOR_GENERATION_MAX_S", 3 * 3600)
ARBOR_HEARTBEAT_TIMEOUT_S = env.float("ARBOR_HEARTBEAT_TIMEOUT_S", 30.0)
ARBOR_QUEUED_TIMEOUT_S = env.float("ARBOR_QUEUED_TIMEOUT_S", 900.0)
# Threads (hence at most as many Postgres connections) a worker process uses for its streams.
ARBOR_WORKER_DB_THREADS = env.int("ARBOR_WORKER_DB_THREADS", 4)
# Defaults until per-user quotas exist: per-user request rate and streams.
ARBOR_DEFAULT_REQUESTS_PER_MINUTE = env.int("ARBOR_DEFAULT_REQUESTS_PER_MINUTE", 20)
ARBOR_DEFAULT_CONCURRENT_STREAMS = env.int("ARBOR_DEFAULT_CONCURRENT_STREAMS", 4)
ARBOR_DEFAULT_MAX_TOKENS = env.int("ARBOR_DEFAULT_MAX_TOKENS", 32_768)
# Site-wide quota defaults under the group defaults (unset = unlimited); see accounts/quota.py.
ARBOR_DEFAULT_TOKENS_PER_DAY: int | None = env.int("ARBOR_DEFAULT_TOKENS_PER_DAY", None)
ARBOR_DEFAULT_TOKENS_PER_MONTH: int | None = env.int("ARBOR_DEFAULT_TOKENS_PER_MONTH", None)
ARBOR_DEFAULT_QUOTA_MAX_TOKENS: int | None = env.int("ARBOR_DEFAULT_QUOTA_MAX_TOKENS", None)
# Health history: rows older than this are pruned by the health check.
ARBOR_HEALTH_HISTORY_HOURS = env.float("ARBOR_HEALTH_HISTORY_HOURS", 48.0)
# Bearer token Prometheus sends for GET /metrics; unset: staff or loopback only.
ARBOR_METRICS_TOKEN = env.str("ARBOR_METRICS_TOKEN", "")
ARBOR_EMULATOR_URL = env.str("ARBOR_EMULATOR_URL", "http://127.0.0.1:30000")
# Frozen annotation exports (snapshots), one folder per campaign.
ARBOR_EXPORT_DIR = env.path("ARBOR_EXPORT_DIR", BASE_DIR / "var" / "exports")
# A snapshot still pending or being written after this long is failed (its worker
# died, or its message was lost); a write of 100,000 items takes about a minute.
ARBOR_EXPORT_STALE_S = env.float("ARBOR_EXPORT_STALE_S", 1800.0)
# Batch generation (annotation campaigns): batch responses queued or running at once,
# over all batches; the upload's limits; samples per prompt; how long a batch response
# may stay queued before its task is sent again (a lost message); the grader's timeout
# per Math-Verify step, in whole seconds.
ARBOR_BATCH_CONCURRENCY = env.int("ARBOR_BATCH_CONCURRENCY", 4)
ARBOR_BATCH_MAX_BYTES = env.int("ARBOR_BATCH_MAX_BYTES", 20 * 1024 * 1024)
ARBOR_BATCH_MAX_PROMPTS = env.int("ARBOR_BATCH_MAX_PROMPTS", 10_000)
ARBOR_BATCH_MAX_LINE_BYTES = env.int("ARBOR_BATCH_MAX_LINE_BYTES", 256 * 1024)
ARBOR_BATCH_MAX_SAMPLES = env.int("ARBOR_BATCH_MAX_SAMPLES", 16)
ARBOR_BATCH_REQUEUE_S = env.float("ARBOR_BATCH_REQUEUE_S", 120.0)
ARBOR_GRADING_TIMEOUT_S = env.int("ARBOR_GRADING_TIMEOUT_S", 3)
# Grading child processes per worker process: concurrent gradings run side by side, each
# with its own deadline.
ARBOR_GRADING_PROCESSES = env.int("ARBOR_GRADING_PROCESSES", 2)
# Show the demo accounts on the login page (`make run` turns it on).
ARBOR_DEMO_HINTS = env.bool("ARBOR_DEMO_HINTS", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("ARBOR_LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # Axes logs every successful sign-in at INFO; lockouts are warnings.
        "axes": {"level": "WARNING"},
    },
}

# The demo accounts `seed_demo` creates (and the login page shows when
# ARBOR_DEMO_HINTS is on). Demo only: never enable the hints in production.
ARBOR_DEMO_USERS = [
    {"username": "alice", "password": "alice-arbor-demo", "role": "user"},
    {"username": "annotator", "password": "annotator-arbor-demo", "role": "annotator"},
    {"username": "admin", "password": "admin-arbor-demo", "role": "admin"},
]
