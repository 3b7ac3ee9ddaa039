"""Real-browser journeys: Playwright drives Debian's Chromium (a test tool's own browser
download cannot work on these machines). `.ci/run` installs `chromium` when it is missing."""

import os
import shutil
import time
from pathlib import Path

import pytest

# The real Stripe emulator (a subprocess), shared with the payment tests.
from tests.sponsorship.conftest import emulator_base, stripe_emulator, webhooks_to  # noqa: F401

# Playwright's sync API keeps an event loop running in the test thread; Django's ORM then
# refuses to run there unless told that this thread is really synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHUNGTAY_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
# Without these, Chromium keeps reaching for Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set CHUNGTAY_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _patient_expect():
    """expect() waits up to 10 s (not 5): the machines running the suite are shared and slow."""
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)


_patient_expect()


def new_page(browser, base_url: str, **options):
    context = browser.new_context(
        base_url=base_url, locale="vi-VN", viewport=options.pop("viewport", {"width": 1280, "height": 900}), **options
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


# django_db_setup first: the live server's threads must connect to the test database, which
# exists only once it has run (when only browser tests are selected nothing else creates it).
@pytest.fixture
def page(django_db_setup, chromium, live_server):
    page = new_page(chromium, live_server.url)
    yield page
    page.context.close()


@pytest.fixture
def other_page(django_db_setup, chromium, live_server):
    """A second person's browser (own cookies), e.g. a reviewer of another province."""
    page = new_page(chromium, live_server.url)
    yield page
    page.context.close()


def wait_until(condition, timeout: float = 10.0, what: str = "condition"):
    """Wait for something the server does on its own (a webhook arriving), checking the
    database, never sleeping a fixed time as a guess."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def screenshot(request):
    """screenshot(page, "name") saves tests/screenshots/<test>-<name>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def log_in(page, email: str, password: str = "pw-Sufficiently-Long-1"):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.locator("#id_password").fill(password)
    page.locator("main button[type=submit]").click()
    page.wait_for_load_state()


def log_out(page):
    page.context.clear_cookies()


@pytest.fixture
def login(page):
    def do(email: str, password: str = "pw-Sufficiently-Long-1"):
        log_in(page, email, password)

    return do
