import os
import subprocess
import sys

from django.conf import settings


def test_the_openapi_schema_generates_without_warnings():
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", os.devnull],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_the_api_requires_authentication_by_default(client, db):
    response = client.get("/api/accounts/me/")
    assert response.status_code in (401, 403)
    assert response.json()["message"]
