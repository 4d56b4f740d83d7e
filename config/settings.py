"""Preference Arena settings: one module, driven by environment variables.

Nothing set gives the embedded default (SQLite under var/, in-process cache, channel layer and
background workers). ``DATABASE_URL`` switches to PostgreSQL, ``REDIS_URL`` to Redis for the
Celery broker, cache, channel layer and rate limits. See the README's configuration table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
TESTING = "pytest" in sys.modules or env_bool("TESTING", False)

_secret = env_str("SECRET_KEY")
if not _secret:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for local development)"
        )
    _secret = "insecure-dev-key-only-for-debug-and-tests-0123456789abcdefghijklmnop"
SECRET_KEY = _secret

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")
    ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_prometheus",
    "arena",
    "annotations",
    "preferences",
    "rating",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.RequestGuard",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
    }
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL", schemes=("postgres", "postgresql", "sqlite"), path_schemes=("sqlite",)
)
DB_POOL_MAX = env_int("DB_POOL_MAX", 10, min_value=1)
if DATABASE_URL and not DATABASE_URL.startswith("sqlite"):
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
    _db["ENGINE"] = "django_prometheus.db.backends.postgresql"
    _db["CONN_MAX_AGE"] = 0  # the pool owns connection reuse; Django refuses both at once
    _db.setdefault("OPTIONS", {})
    # Server-side binding lets psycopg prepare repeated statements (the vote and battle hot
    # paths run the same few queries), so PostgreSQL stops re-parsing and re-planning them.
    _db["OPTIONS"]["server_side_binding"] = env_bool("DB_SERVER_SIDE_BINDING", True)
    if env_bool("DB_POOL", True):
        # Django's psycopg 3 pool: under ASGI and threaded Celery workers every thread borrows
        # a connection per request/task instead of holding one forever.
        _db["OPTIONS"]["pool"] = {
            "min_size": 1,
            "max_size": DB_POOL_MAX,
            # How long a request waits for a connection before its 503.
            "timeout": env_float("DB_POOL_TIMEOUT", 5.0, min_value=0.1),
            # psycopg retries a failed connection with exponential backoff for this long and
            # then gives up until a request asks again: the default (300 s) let the backoff grow
            # past 16 s while PostgreSQL restarted, so pages stayed 503 long after it was back.
            "reconnect_timeout": 5.0,
        }
        # With the pool, Django turns this into psycopg's ``check``: a connection is tested (one
        # empty query) when a request borrows it, so after a PostgreSQL restart the pool drops
        # the dead ones instead of handing them out.
        _db["CONN_HEALTH_CHECKS"] = True
    DATABASES = {"default": _db}
else:
    _sqlite_path = (
        dj_database_url.parse(DATABASE_URL)["NAME"]
        if DATABASE_URL
        else str(VAR_DIR / "arena.sqlite3")
    )
    DATABASES = {
        "default": {
            "ENGINE": "django_prometheus.db.backends.sqlite3",
            "NAME": _sqlite_path,
            "OPTIONS": {
                # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at
                # BEGIN so the embedded worker threads queue on busy_timeout instead of failing
                # with "database is locked" when a read transaction tries to upgrade.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
                ),
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, broker, channel layer, rate limits -----------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"), path_schemes=("unix",))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.DegradingRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_PREFIX", "pa"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # The pub/sub layer delivered every message when we measured both on the 2-core
            # reference machine; the core layer silently dropped messages over its capacity.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNELS_PREFIX", "pa-ws")},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Background work --------------------------------------------------------------------------
# "celery" when Redis is configured, otherwise the embedded thread pool (core/background.py).
BACKGROUND_MODE = env_str("BACKGROUND_MODE", "celery" if REDIS_URL else "embedded")
if BACKGROUND_MODE not in {"celery", "embedded"}:
    raise ImproperlyConfigured("BACKGROUND_MODE must be 'celery' or 'embedded'")
if BACKGROUND_MODE == "celery" and not REDIS_URL:
    raise ImproperlyConfigured("BACKGROUND_MODE=celery needs REDIS_URL")
EMBEDDED_WORKERS = env_int("EMBEDDED_WORKERS", 64, min_value=1)
HEARTBEAT_SECONDS = env_float("HEARTBEAT_SECONDS", 15.0, min_value=0.2)

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 900, min_value=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 840, min_value=1)
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish happens inside a request (starting a battle enqueues its two generations), so a dead
# broker must cost that request about a second, not minutes: the request then answers 503 and
# undoes what it created (arena.services). Without socket_timeout a publish to a Redis that
# stopped answering without closing the connection (frozen, failover, a NAT's dropped state)
# waits forever; connection refused fails at once and is retried once after 0.2 s, which rides
# out a restart of Redis but no real outage. Workers are not affected: their BRPOP replies
# within a second (kombu's brpop_timeout) and they reconnect by themselves when Redis is back.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_connect_timeout": 2,
    "socket_timeout": 3,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0.2,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_TASK_DEFAULT_QUEUE = "default"
# Generation tasks mostly wait on the network: they get their own queue so a threads/gevent pool
# can run many streams without starving short tasks (rating, exports) on the default queue.
CELERY_TASK_ROUTES = {
    "arena.generate_response": {"queue": "stream"},
    "annotations.tasks.generate_*": {"queue": "stream"},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Auth, sessions, security ------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
_secure = env_bool("SECURE_COOKIES", not (DEBUG or TESTING))
SESSION_COOKIE_SECURE = _secure
CSRF_COOKIE_SECURE = _secure
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _secure)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if (DEBUG or TESTING) else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- I18N, static --------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every start without it
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if (DEBUG or TESTING)
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

# --- REST API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Bearer first: DRF answers an authentication failure with the first class's challenge, so
    # this order gives 401 + "WWW-Authenticate: Bearer" (session auth has no challenge: 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "preferences.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "preferences.auth.TokenScope",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.CreatedCursorPagination",
    "DEFAULT_PARSER_CLASSES": [
        "core.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "core.openapi.ApiSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "120/min"),
        "user": env_str("API_THROTTLE_USER", "1200/min"),
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Preference Arena API",
    "DESCRIPTION": (
        "Leaderboards, models, battles, preference pairs and dataset releases. "
        "Authenticate with `Authorization: Bearer <token>`; leaderboards and model lists are public."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Document JSON bodies only: form encodings cannot carry the nested objects and nulls our
    # serializers take, so documenting them promised requests the API must refuse.
    "PARSER_WHITELIST": ["core.api.JSONParser"],
}

# --- Logging -----------------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_JSON = env_bool("LOG_JSON", not DEBUG)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "config.logs.RedactSecretsFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        },
        "plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_JSON else "plain",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

PROMETHEUS_EXPORT_MIGRATIONS = False

# --- Arena ------------------------------------------------------------------------------------
ARENA_MAX_PROMPT_CHARS = env_int("ARENA_MAX_PROMPT_CHARS", 12_000, min_value=1)
ARENA_MAX_TURNS = env_int("ARENA_MAX_TURNS", 10, min_value=1)
ARENA_BATTLES_PER_MINUTE = env_int("ARENA_BATTLES_PER_MINUTE", 20, min_value=0)
ARENA_BATTLES_PER_MINUTE_PER_IP = env_int("ARENA_BATTLES_PER_MINUTE_PER_IP", 60, min_value=0)
ARENA_VOTES_PER_MINUTE = env_int("ARENA_VOTES_PER_MINUTE", 30, min_value=0)
ARENA_VOTES_PER_MINUTE_PER_IP = env_int("ARENA_VOTES_PER_MINUTE_PER_IP", 120, min_value=0)
ARENA_BLOCKLIST = env_list("ARENA_BLOCKLIST")
ARENA_MODERATION_URL = env_url("ARENA_MODERATION_URL", schemes=("http", "https"))
ARENA_MODERATION_KEY_ENV = env_str("ARENA_MODERATION_KEY_ENV", "OPENAI_API_KEY")
# Words that reveal a model's maker; a response naming one flags the vote (kept, not counted).
ARENA_LEAK_WORDS = env_list(
    "ARENA_LEAK_WORDS",
    [
        "openai",
        "chatgpt",
        "gpt-4",
        "gpt-4o",
        "gpt-3.5",
        "anthropic",
        "claude",
        "gemini",
        "bard",
        "google deepmind",
        "llama",
        "meta ai",
        "mistral",
        "mixtral",
        "qwen",
        "alibaba cloud",
        "deepseek",
        "grok",
        "xai",
        "cohere",
        "command-r",
        "phi-3",
    ],
)
ARENA_EXCLUDE_LEAKING_MODELS = env_bool("ARENA_EXCLUDE_LEAKING_MODELS", False)
ARENA_ACTIVE_SAMPLING_MIX = env_float("ARENA_ACTIVE_SAMPLING_MIX", 1.0, min_value=0.0)
ARENA_STREAM_FLUSH_SECONDS = env_float("ARENA_STREAM_FLUSH_SECONDS", 0.075, min_value=0.01)
# A response being generated holds a lease its worker renews every third of this; a sweep every
# ARENA_LEASE_SWEEP_SECONDS ends the responses of a dead worker (bound: the sum of the two).
ARENA_LEASE_SECONDS = env_float("ARENA_LEASE_SECONDS", 15.0, min_value=0.5)
ARENA_LEASE_SWEEP_SECONDS = env_float("ARENA_LEASE_SWEEP_SECONDS", 10.0, min_value=0.2)
# A release being built holds a lease (renewed every third of this); a sweep every
# PREFERENCES_RELEASE_SWEEP_SECONDS ends the builds of a dead worker as failed, with Retry.
PREFERENCES_RELEASE_LEASE_SECONDS = env_float(
    "PREFERENCES_RELEASE_LEASE_SECONDS", 30.0, min_value=0.5
)
PREFERENCES_RELEASE_SWEEP_SECONDS = env_float(
    "PREFERENCES_RELEASE_SWEEP_SECONDS", 10.0, min_value=0.2
)
# Test-only: seconds a build sleeps per row written, so a fault test can kill it mid-way.
PREFERENCES_RELEASE_TEST_ROW_DELAY = env_float(
    "PREFERENCES_RELEASE_TEST_ROW_DELAY", 0.0, min_value=0.0
)
RATING_ANOMALY_ALPHA = env_float("RATING_ANOMALY_ALPHA", 0.01, min_value=0.0)
