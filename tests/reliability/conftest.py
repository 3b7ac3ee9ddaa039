"""Fixtures of the reliability suites: a private Redis, Celery worker processes, a database
lock held from outside, and the Stripe emulator (shared with tests/sponsorship). Everything
spawned is stopped in teardown, failures included."""

import psycopg
import pytest
from django.db import connection

from tests.sponsorship.conftest import emulator_base, english_messages, stripe_emulator  # noqa: F401

from .procs import REPORTED, PrivateRedis, Worker, worker_env


def pytest_terminal_summary(terminalreporter):
    """What each reliability scenario tried, even when output is captured."""
    if REPORTED:
        terminalreporter.section("reliability: what the suites tried")
        for line in REPORTED:
            terminalreporter.write_line(line)


@pytest.fixture
def private_redis():
    redis = PrivateRedis().start()
    yield redis
    redis.cleanup()


@pytest.fixture
def start_worker(transactional_db, private_redis, settings):
    """start_worker(name, **env) → a ready Celery worker on the test database and the private
    Redis, whose PostgreSQL connections carry application_name=name."""
    started = []

    def start(name, *, concurrency=1, ready=True, **extra):
        env = worker_env(database=connection.settings_dict["NAME"], redis=private_redis, app_name=name, **extra)
        worker = Worker(name, env, concurrency=concurrency)
        started.append(worker)
        return worker.wait_ready() if ready else worker

    start.redis = private_redis
    start.workers = started
    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def publish(private_redis):
    """publish(task, *args): send a task to the private broker, as beat or a view would."""
    from config.celery_app import app

    conn = app.connection_for_write(private_redis.broker_url)

    def send(task, *args):
        return task.apply_async(args, connection=conn)

    yield send
    conn.release()


def _conninfo():
    s = connection.settings_dict
    info = {"dbname": s["NAME"], "user": s.get("USER") or None, "host": s.get("HOST") or None, **s.get("OPTIONS", {})}
    return {k: v for k, v in info.items() if v}


@pytest.fixture
def table_lock(transactional_db):
    """table_lock(table) holds LOCK TABLE … IN SHARE MODE on its own connection (writers wait)
    until release() or the end of the test: a way to stop a worker at a known point."""
    conns = []

    class Lock:
        def __init__(self, table):
            self.conn = psycopg.connect(**_conninfo())
            conns.append(self.conn)
            self.conn.execute(f"LOCK TABLE {table} IN SHARE MODE")

        def release(self):
            if not self.conn.closed:
                self.conn.commit()
                self.conn.close()

    yield Lock
    for c in conns:
        if not c.closed:
            c.rollback()
            c.close()


@pytest.fixture
def admin_sql(transactional_db):
    """A separate autocommit connection for pg_stat_activity / pg_terminate_backend."""
    conn = psycopg.connect(**_conninfo(), autocommit=True)
    yield conn
    conn.close()
