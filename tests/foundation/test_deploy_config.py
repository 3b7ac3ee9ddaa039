"""The deploy files cannot be run here (no Docker engine), so they are checked as data."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
# env("X"), env.int("X"), os.environ.get("X"), env.get("X") in Python; ${X} in the shell script.
READ_PATTERN = r"""(?:env(?:\.\w+)?\(|environ\.get\(|env\.get\(|\$\{?)"?([A-Z][A-Z0-9_]{3,})"""


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service_with_a_healthcheck_where_it_matters():
    services = compose()["services"]
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    for name in ("web", "worker", "postgres", "redis"):
        assert "healthcheck" in services[name], name


def test_compose_commands_match_the_project():
    services = compose()["services"]
    assert services["web"]["command"][:2] == ["gunicorn", "config.wsgi"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    # Scaling workers is meaningful only if no worker publishes a fixed port or name.
    assert "ports" not in services["worker"] and "container_name" not in services["worker"]
    assert "-n" not in services["worker"]["command"]


def test_compose_variables_are_ones_the_settings_read():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    services = compose()["services"]
    for name in ("web", "worker", "beat"):
        for variable in services[name]["environment"]:
            assert variable in documented, f"{name} sets {variable}, which .env.example does not list"
    read = set()
    for path in list((ROOT / "config").rglob("*.py")) + [ROOT / "chungtay"]:
        read |= set(re.findall(READ_PATTERN, path.read_text()))
    unknown = sorted(v for v in documented - read if v != "DJANGO_SETTINGS_MODULE")
    assert not unknown, f".env.example lists variables nothing reads: {unknown}"


def test_production_refuses_to_start_without_its_secrets():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_"))}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="x" * 20 + "a-long-random-production-secret-key-0123456789",
        DJANGO_ALLOWED_HOSTS="chungtay.example.org",
        STRIPE_SECRET_KEY="sk_live_dummy",
        STRIPE_PUBLISHABLE_KEY="pk_live_dummy",
        STRIPE_WEBHOOK_SECRET="whsec_dummy",
    )
    env.pop("STRIPE_API_BASE", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests' conftest
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_env_example_lists_every_variable_the_settings_read():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    read = set()
    for path in (ROOT / "config" / "settings").glob("*.py"):
        read |= set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', path.read_text()))
    assert read, "the pattern found no variables at all"
    assert not sorted(read - documented), f".env.example misses {sorted(read - documented)}"
