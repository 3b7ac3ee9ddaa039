"""Settings for the test suite: the same real engines, a separate database."""

from .base import *  # noqa: F403
from .base import DATABASES, env

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
