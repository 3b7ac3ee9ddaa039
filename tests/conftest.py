"""Shared fixtures. The test database is created once per run with migrations, and the
reference localities (both schemes and the mapping) are loaded into it once: every test can
rely on real provinces and communes."""

import pytest

from beneficiaries.models import Level, Locality, Scheme
from donors.models import Role, StaffScope, User


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    from django.core.management import call_command

    from beneficiaries.localities import localities_are_loaded, localities_load

    # Pages are checked in Vietnamese too; a clean checkout has only the .po catalogues.
    call_command("compile_translations")
    with django_db_blocker.unblock():
        if not localities_are_loaded():
            localities_load()
    yield
    with django_db_blocker.unblock():
        _close_sessions_left_open()


OTHER_SESSIONS = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def _close_sessions_left_open(patience: float = 3.0) -> None:
    """The live server's request threads are daemons, each with its own database session: one
    still serving a browser's keep-alive connection when the run ends keeps its session open,
    and the test database then cannot be dropped ("being accessed by other users"). Give them
    a moment to finish, then end the sessions that are left (nothing else uses the test
    database by then)."""
    import time

    from django.db import connection

    deadline = time.monotonic() + patience
    with connection.cursor() as cur:
        while True:
            cur.execute(f"SELECT count(*) {OTHER_SESSIONS}")
            if not cur.fetchone()[0]:
                return
            if time.monotonic() > deadline:
                cur.execute(f"SELECT pg_terminate_backend(pid) {OTHER_SESSIONS}")
                return
            time.sleep(0.1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """A transactional test (transaction=True, live_server) empties every table when it ends.
    This runs after all of that test's fixtures are torn down, flush included, and puts the
    reference localities back for the tests that follow."""
    yield
    marker = item.get_closest_marker("django_db")
    transactional = (marker is not None and marker.kwargs.get("transaction")) or bool(
        {"transactional_db", "live_server"} & set(getattr(item, "fixturenames", ()))
    )
    # With no next test the session's fixtures, the test database included, are already gone.
    if transactional and nextitem is not None:
        from pytest_django.plugin import blocking_manager_key

        from beneficiaries.localities import localities_are_loaded, localities_load

        with item.config.stash[blocking_manager_key].unblock():
            if not localities_are_loaded():
                localities_load()
            # The flush also empties the premium schedules and support rules a migration seeded.
            from beneficiaries.pricing_seed import seed_pricing

            seed_pricing()


def _province(code: int) -> Locality:
    return Locality.objects.get(scheme=Scheme.CURRENT, level=Level.PROVINCE, code=code)


@pytest.fixture
def ha_noi(db) -> Locality:
    return _province(1)


@pytest.fixture
def ha_tinh(db) -> Locality:
    return _province(42)


@pytest.fixture
def make_user(db):
    """make_user(role, *scopes) → a user with that role scoped to those localities."""

    def make(role: str = Role.DONOR, *scopes: Locality, email: str | None = None) -> User:
        n = User.objects.count() + 1
        user = User.objects.create_user(email or f"{role}{n}@example.test", "pw-Sufficiently-Long-1", role=role)
        for locality in scopes:
            StaffScope.objects.create(user=user, locality=locality)
        return user

    return make
