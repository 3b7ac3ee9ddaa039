"""The two commands of the README, after ./chungtay has made the venv.

    up       engines + bootstrap + web (gunicorn), Celery worker, Celery beat and, with no
             STRIPE_SECRET_KEY, the Stripe emulator: one process group in the foreground.
    smoke    the same, then waits for /healthz to be green, logs in as each demo user, exits 0/1.
    test     engines, then pytest (extra arguments are passed on); "no tests" fails.
    manage   any manage.py command on the same engines.

Children are supervised: Ctrl-C or SIGTERM stops them all; a child that dies on its own is
reported with its exit code and the rest are stopped, so nothing fails silently.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from config import engines

BASE_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
STOP = threading.Event()


def log(message: str) -> None:
    print(f"chungtay | {message}", flush=True)


def free_port(preferred: int | None = None) -> int:
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                log(f"port {preferred} is taken; picking a free one")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str]):
        self.name = name
        self.proc = subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            sys.stdout.write(f"{self.name:>6} | {line}")
            sys.stdout.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop in {timeout:.0f}s; killing it")
            self.proc.kill()
            self.proc.wait()


def base_env(eng: engines.Engines, settings_module: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(eng.env())
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def stripe_emulator_env(env: dict[str, str], web_port: int) -> dict[str, str]:
    """Settings for the emulator when no real Stripe key is configured."""
    port = free_port(int(env.get("CHUNGTAY_STRIPE_EMULATOR_PORT", "8420")))
    return {
        "STRIPE_API_BASE": f"http://127.0.0.1:{port}",
        "STRIPE_SECRET_KEY": "sk_test_chungtay_emulator",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_chungtay_emulator",
        "STRIPE_WEBHOOK_SECRET": "whsec_chungtay_emulator",
        "CHUNGTAY_STRIPE_EMULATOR_PORT": str(port),
        "CHUNGTAY_WEBHOOK_URL": f"http://127.0.0.1:{web_port}/stripe/webhook/",
    }


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_healthy(url: str, children: list[Child], timeout: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    last = "web server not answering yet"
    while time.monotonic() < deadline and not STOP.is_set():
        dead = [c for c in children if c.proc.poll() is not None]
        if dead:
            return False, f"{dead[0].name} exited with code {dead[0].proc.returncode} during start-up"
        try:
            status, body = http_get(f"{url}/healthz", timeout=5)
            report = json.loads(body)
            if status == 200:
                return True, json.dumps(report["checks"], ensure_ascii=False)
            last = f"/healthz {status}: failing {', '.join(report.get('failing', []))}: " + "; ".join(
                f"{k}: {v['detail']}" for k, v in report["checks"].items() if not v["ok"]
            )
        except (OSError, ValueError) as exc:
            last = f"web server not answering yet ({exc})"
        time.sleep(0.5)
    return False, last


def check_demo_logins(url: str, logins: list[tuple[str, str, str]]) -> list[str]:
    """Log in through the real login form as each demo user; return the failures."""
    import http.cookiejar
    import re
    import urllib.parse

    failures = []
    for email, password, role in logins:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{url}/accounts/login/", timeout=10).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({"username": email, "password": password, "csrfmiddlewaretoken": token})
        request = urllib.request.Request(f"{url}/accounts/login/", data=data.encode(), headers={"Referer": url})
        opener.open(request, timeout=10).read()
        me = opener.open(f"{url}/api/accounts/me/", timeout=10)
        body = json.loads(me.read())
        if body.get("email") != email:
            failures.append(f"{role} {email}: login did not stick")
    return failures


def bootstrap(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """Run `manage.py bootstrap` (it seeds the demo too), show its output, and return the demo
    logins it printed as (email, password, role) rows."""
    result = subprocess.run(
        [sys.executable, "manage.py", "bootstrap"], cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, text=True
    )
    sys.stdout.write(result.stdout)
    result.check_returncode()
    rows = []
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and "@" in parts[-2]:
            rows.append((parts[-2], parts[-1], " ".join(parts[:-2])))
    return rows


def run_platform(smoke: bool) -> int:
    eng = engines.start(log=log)
    children: list[Child] = []
    try:
        env = base_env(eng, os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.local"))
        port = free_port(int(os.environ.get("PORT", "8000")))
        url = f"http://127.0.0.1:{port}"
        env.setdefault("CHUNGTAY_SITE_URL", url)
        if not env.get("STRIPE_SECRET_KEY"):
            env.update(stripe_emulator_env(env, port))
        log("bootstrapping: migrations, translations, localities, demo data")
        logins = bootstrap(env)

        if env.get("CHUNGTAY_STRIPE_EMULATOR_PORT"):
            children.append(
                Child(
                    "stripe",
                    [
                        sys.executable,
                        "-m",
                        "config.stripe_emulator",
                        "--port",
                        env["CHUNGTAY_STRIPE_EMULATOR_PORT"],
                        "--webhook-url",
                        env["CHUNGTAY_WEBHOOK_URL"],
                        "--webhook-secret",
                        env["STRIPE_WEBHOOK_SECRET"],
                    ],
                    env,
                )
            )
        children.append(
            Child(
                "web",
                [
                    str(VENV_BIN / "gunicorn"),
                    "config.wsgi",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    env.get("WEB_CONCURRENCY", "2"),
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                    "--graceful-timeout",
                    "5",
                ],
                env,
            )
        )
        worker_name = f"worker-{os.getpid()}@%h"
        children.append(
            Child(
                "worker",
                [
                    str(VENV_BIN / "celery"),
                    "-A",
                    "config",
                    "worker",
                    "-l",
                    "INFO",
                    "-n",
                    worker_name,
                    "--concurrency",
                    env.get("CELERY_CONCURRENCY", "2"),
                ],
                env,
            )
        )
        children.append(
            Child(
                "beat",
                [
                    str(VENV_BIN / "celery"),
                    "-A",
                    "config",
                    "beat",
                    "-l",
                    "INFO",
                    "--pidfile=",
                    "-s",
                    str(engines.DATA_DIR / "celerybeat-schedule"),
                ],
                env,
            )
        )
        healthy, detail = wait_healthy(url, children, timeout=float(os.environ.get("CHUNGTAY_START_TIMEOUT", "90")))
        if not healthy:
            log(f"NOT HEALTHY: {detail}")
            return 1
        log(f"healthy: {detail}")
        if smoke:
            failures = check_demo_logins(url, logins) if logins else ["bootstrap printed no demo logins"]
            if failures:
                log("demo logins FAILED: " + "; ".join(failures))
                return 1
            status, _ = http_get(f"{url}/")
            if status != 200:
                log(f"home page answered {status}")
                return 1
            log(f"smoke OK: /healthz green, home page 200, {len(logins)} demo logins work")
            return 0
        print_banner(url, env, logins)
        return supervise(children)
    finally:
        for child in reversed(children):
            child.stop()
        for child in reversed(children):
            child.wait(timeout=10)
        eng.stop()


def print_banner(url: str, env: dict[str, str], logins: list[tuple[str, str, str]]) -> None:
    stripe = (
        f"emulator at {env['STRIPE_API_BASE']}" if env.get("STRIPE_API_BASE") else "real Stripe (STRIPE_SECRET_KEY)"
    )
    lines = [
        "",
        "=" * 72,
        f"  chungtay is running at {url}",
        f"  health: {url}/healthz   API schema: {url}/api/schema/   admin: {url}/admin/",
        f"  Stripe: {stripe}",
        "  Demo logins (one per role):",
        *[f"    {role:26} {email:32} {password}" for email, password, role in logins],
        "  Ctrl-C stops everything.",
        "=" * 72,
        "",
    ]
    print("\n".join(lines), flush=True)


def supervise(children: list[Child]) -> int:
    while not STOP.is_set():
        for child in children:
            code = child.proc.poll()
            if code is not None and not STOP.is_set():
                log(f"{child.name} exited unexpectedly with code {code}; stopping everything")
                return 1
        STOP.wait(0.5)
    log("stopping")
    return 0


def run_tests(pytest_args: list[str]) -> int:
    eng = engines.start(log=log)
    try:
        env = base_env(eng, "config.settings.test")
        result = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=BASE_DIR, env=env)
        if result.returncode == 5:
            log("pytest collected no tests: that is a failure")
            return 1
        return result.returncode
    finally:
        eng.stop()


def run_manage(args: list[str]) -> int:
    eng = engines.start(log=log)
    try:
        env = base_env(eng, os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.local"))
        return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env).returncode
    finally:
        eng.stop()


def _on_signal(signum, frame) -> None:
    STOP.set()


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("up", [])
    signal.signal(signal.SIGTERM, _on_signal)
    if command in ("up", "smoke"):
        signal.signal(signal.SIGINT, _on_signal)
        return run_platform(smoke=command == "smoke")
    if command == "test":
        return run_tests(rest)
    if command == "manage":
        return run_manage(rest)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
