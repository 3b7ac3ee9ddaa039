"""Settings for the test suite: the same real engines, a separate database."""

from urllib.parse import urlsplit, urlunsplit

from .base import *  # noqa: F403
from .base import DATABASES, celery_redis_url, env

SECRET_KEY = "chungtay-test-key"
ALLOWED_HOSTS = ["*"]
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Several checkouts may test against one server at once: each can pick its own name.
DATABASES["default"]["TEST"] = {"NAME": env("CHUNGTAY_TEST_DATABASE", default="test_chungtay")}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Serve static files straight from the app folders, without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - WhiteNoise warns when it is missing

# Tests use their own Redis database so a running platform on the same server is untouched.
_test_redis_db = env.int("CHUNGTAY_TEST_REDIS_DB", default=15)
if REDIS_URL.startswith("unix://"):  # noqa: F405
    REDIS_URL = REDIS_URL.split("?", 1)[0] + f"?db={_test_redis_db}"  # noqa: F405
else:
    _parts = urlsplit(REDIS_URL)  # noqa: F405
    REDIS_URL = urlunsplit(_parts._replace(path=f"/{_test_redis_db}"))
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CELERY_BROKER_URL = celery_redis_url(REDIS_URL)  # noqa: F405
CELERY_RESULT_BACKEND = CELERY_BROKER_URL

# Threads of the live server would otherwise keep connections open past the test database's end.
DATABASES["default"]["CONN_MAX_AGE"] = 0

# Rate limits stay on (the code path is exercised) but generous, so suites that log in or give
# many times are not throttled; tests/hardening sets tight limits explicitly.
CHUNGTAY_RATELIMITS = {scope: "100000/60" for scope in CHUNGTAY_RATELIMITS}  # noqa: F405
CHUNGTAY_LOGIN_LOCKOUT_FAILURES = 1000

# Pages show the figures the test just wrote; the cache itself has its own test.
CHUNGTAY_PUBLIC_FIGURES_CACHE_SECONDS = 0
