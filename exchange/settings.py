"""Settings, all from the environment (see the configuration table in README.md)."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from exchange import embedded

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# Demo mode shows the demo logins and the "top up demo funds" button. `make run` turns it on.
DEMO_MODE = env_bool("DEMO_MODE", False)

# Unset: a random key made once for this installation and kept in .data/ (set it explicitly
# when several machines must share sessions).
SECRET_KEY = env_str("SECRET_KEY") or embedded.local_secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI and ReDoc as the site's own static files: /api/docs/ works without the internet.
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "marketplace",
    "exchange",
    "settlement",
    "supervision",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "exchange.wire.BadInputMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "exchange.urls"
ASGI_APPLICATION = "exchange.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "exchange.views.site_context",
            ],
        },
    },
]

# PostgreSQL always: DATABASE_URL, or the embedded server this project starts itself.
DATABASE_URL = env_str("DATABASE_URL") or embedded.postgres_url()
# Web processes (python -m exchange.serve) take connections from a pool (psycopg_pool), not
# persistent ones: under ASGI each request's sync code runs on a thread of its own, and a
# persistent connection stays with the thread that opened it until it is collected. Six
# rounds of 20 concurrent reads against one process held 20–51 backends, still 20 after 75 s
# idle (tests/exchange/test_db_connections.py has the rounds). Pooled, a connection returns
# to the pool when Django closes it at the end of the request, the pool holds at most
# DB_POOL_MAX_SIZE per process, and a request that finds them all busy waits up to
# DB_POOL_TIMEOUT seconds. Other processes (the engine runner, management commands) keep
# persistent connections (DB_POOL_MAX_SIZE=0): the engine holds its shard's advisory lock
# for the life of its connection, which a pool would hand on to the next borrower instead
# of closing.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
DATABASES = {"default": dj_database_url.parse(
    DATABASE_URL, conn_max_age=0 if DB_POOL_MAX_SIZE else env_int("DB_CONN_MAX_AGE", 60))}
if DB_POOL_MAX_SIZE:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(env_int("DB_POOL_MIN_SIZE", 1), DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env_int("DB_POOL_TIMEOUT", 10),
        # After a burst the pool shrinks by one idle connection per max_idle seconds (psycopg_pool).
        "max_idle": env_int("DB_POOL_MAX_IDLE", 10),
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if env_str("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}

REDIS_URL = env_str("REDIS_URL") or embedded.valkey_url()
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, as long as the layer's
            # blocking BZPOPMIN waits: idle consumers would fail. Blocking reads wait here.
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "prefix": env_str("CHANNEL_PREFIX", "cx"),
            "capacity": 1000,
            "expiry": 60,
        },
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
# Stored in UTC; shown in China time, where the hubs and delivery windows are.
USE_TZ = True
TIME_ZONE = "Asia/Shanghai"

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_SECURE = not DEBUG and env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("BEHIND_TLS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = 31536000

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "exchange.schema.AutoSchema",
    "EXCEPTION_HANDLER": "exchange.errors.api_exception_handler",
    # JSON through the one reader every edge uses (exchange/wire.py).
    "DEFAULT_PARSER_CLASSES": [
        "exchange.wire.JsonParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("THROTTLE_ANON", "120/min"),
        "user": env_str("THROTTLE_USER", "6000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Compute Exchange API",
    "DESCRIPTION": "Trade standardised compute capacity (SCU·h) with traceable provenance.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No call to the public validator service: the page works without the internet.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "exchange.openapi.document_errors"],
    # Two lists of roles share the field name "roles": each gets a name of its own.
    "ENUM_NAME_OVERRIDES": {"AllocationRoleEnum": ["holder", "seller", "provider"],
                            "SettlementRoleEnum": ["holder", "seller", "owner"],
                            # The supervision console's participants and disputes.
                            "KycStatusEnum": ["pending", "verified", "rejected", "suspended"],
                            "ParticipantKindEnum": ["buyer", "provider", "attestor"],
                            "KycActionEnum": ["approve", "reject", "suspend", "reinstate"],
                            "DisputeStateEnum": ["open", "upheld", "adjusted"]},
}

CACHES = {
    "default": {
        "BACKEND": "exchange.cache.SharedPoolRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CHANNEL_PREFIX", "cx"),
    }
}

# Trading
INSTRUMENT_HORIZON_DAYS = env_int("INSTRUMENT_HORIZON_DAYS", 7)
GATE_CLOSURE_MINUTES = env_int("GATE_CLOSURE_MINUTES", 120)
OPENING_AUCTION_SECONDS = env_int("OPENING_AUCTION_SECONDS", 300)
VOLATILITY_AUCTION_SECONDS = env_int("VOLATILITY_AUCTION_SECONDS", 60)
PRICE_BAND_BPS = env_int("PRICE_BAND_BPS", 1000)
# Demo mode only: the demo compute class (code DEMO, added by seed_demo in demo mode) trades
# delivery windows of DEMO_PERIOD_MINUTES (a divisor of 60) instead of whole hours, its gate
# closes DEMO_GATE_CLOSURE_SECONDS before the window, its opening auction lasts at most
# DEMO_OPENING_AUCTION_SECONDS and it is listed DEMO_HORIZON_MINUTES ahead: with the shorter
# dispute window, a trade made after `make run` settles within about ten minutes. Every real
# class keeps whole-hour periods; outside demo mode the demo class is not traded at all.
DEMO_PERIOD_MINUTES = env_int("DEMO_PERIOD_MINUTES", 5)
if DEMO_PERIOD_MINUTES < 1 or 60 % DEMO_PERIOD_MINUTES:
    raise ImproperlyConfigured(f"DEMO_PERIOD_MINUTES must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20 or 30), "
                               f"not {DEMO_PERIOD_MINUTES}.")
DEMO_GATE_CLOSURE_SECONDS = env_int("DEMO_GATE_CLOSURE_SECONDS", 60)
DEMO_OPENING_AUCTION_SECONDS = env_int("DEMO_OPENING_AUCTION_SECONDS", 20)
DEMO_HORIZON_MINUTES = env_int("DEMO_HORIZON_MINUTES", 60)
ENGINE_BATCH_INTERVAL_MS = env_int("ENGINE_BATCH_INTERVAL_MS", 20)
# Most inbox commands in one engine batch (one transaction). Larger batches spread each
# batch's fixed statements thinner (bench/engine.py: about 16,000 orders/s at 5,000 and
# about 20,000 at 20,000); below saturation batches hold what arrived in one interval anyway.
ENGINE_BATCH_SIZE = env_int("ENGINE_BATCH_SIZE", 20000)
# /healthz answers 503 once the oldest unprocessed inbox command has waited longer than this.
HEALTH_ENGINE_LAG_SECONDS = env_int("HEALTH_ENGINE_LAG_SECONDS", 30)
# An open /ws/events/ socket re-reads its credentials at most this often while events flow,
# and closes once they no longer read the organisation (revoked, deactivated, moved, suspended).
EVENTS_ACCESS_RECHECK_SECONDS = env_int("EVENTS_ACCESS_RECHECK_SECONDS", 1)

# Settlement (settlement/). Delivery credentials are encrypted with the first of these Fernet
# keys and read with any (rotate by putting a new key first); a developer's machine makes one.
CREDENTIALS_KEYS = env_list("CREDENTIALS_KEYS", "") or [embedded.local_credentials_key()]
# The holder may dispute metering until this long after the delivery window ends; the
# provider may report metering until then too. An allocation settles once it has passed.
# Demo mode shortens it to a minute (with the demo class below), so the demo settles soon.
DISPUTE_WINDOW_SECONDS = env_int("DISPUTE_WINDOW_SECONDS", 60 if DEMO_MODE else 24 * 3600)
# Allocations settled per transaction, and the settlement runner's pause between passes.
SETTLEMENT_BATCH_SIZE = env_int("SETTLEMENT_BATCH_SIZE", 5000)
SETTLEMENT_INTERVAL_SECONDS = env_int("SETTLEMENT_INTERVAL_SECONDS", 5)
# check_ledger names an allocation due this long without being settled (no runner running).
SETTLEMENT_OVERDUE_SECONDS = env_int("SETTLEMENT_OVERDUE_SECONDS", 3600)
# Surveillance (supervision/surveillance/): inbox commands read per pass at most, and the
# pause between passes when it has caught up.
SURVEILLANCE_BATCH_SIZE = env_int("SURVEILLANCE_BATCH_SIZE", 10000)
SURVEILLANCE_INTERVAL_MS = env_int("SURVEILLANCE_INTERVAL_MS", 200)

# The trading terminal asks for a second click before an order worth more than this (CNY).
ORDER_CONFIRM_ABOVE_CNY = env_str("ORDER_CONFIRM_ABOVE_CNY", "50000.00")
# The market overview's public table (home page, /markets/) is rendered at most once per this
# many seconds per language, filters and page; 0: every time. Its prices then update live.
MARKET_OVERVIEW_CACHE_SECONDS = env_int("MARKET_OVERVIEW_CACHE_SECONDS", 1)

THROTTLE_MARKETPLACE_WRITE = env_str("THROTTLE_MARKETPLACE_WRITE", "300/min")
# Orders per API token (or signed-in person) on the fast order path and over WebSocket
# commands, per web process (exchange/ratelimit.py says why per process).
THROTTLE_ORDERS = env_str("THROTTLE_ORDERS", "6000/min")
# Sign-in: after this many wrong passwords for one account (or 4× as many from one address)
# within the window, further attempts are refused until the window has passed.
SIGN_IN_MAX_FAILURES = env_int("SIGN_IN_MAX_FAILURES", 5)
SIGN_IN_LOCKOUT_SECONDS = env_int("SIGN_IN_LOCKOUT_SECONDS", 900)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
