"""Personas and the real localstripe emulator (a subprocess on a free loopback port,
emptied before each test)."""

import json
import time

import pytest
import requests

from config.stripe_emulator import spawn as spawn_emulator
from donors.models import DonorKind, DonorProfile, Role, User
from sponsorship import stripe_client

WEBHOOK_SECRET = "whsec_test_chungtay"
SECRET_KEY = "sk_test_chungtay"
PUBLISHABLE_KEY = "pk_test_chungtay"


@pytest.fixture(scope="session")
def emulator_base():
    proc, base = spawn_emulator()
    yield base
    proc.terminate()
    proc.wait(timeout=5)


@pytest.fixture
def stripe_emulator(emulator_base, settings):
    requests.delete(f"{emulator_base}/_config/data", timeout=5).raise_for_status()
    settings.STRIPE_API_BASE = emulator_base
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    # Park the webhook somewhere harmless unless a test points it at the live server.
    requests.post(
        f"{emulator_base}/_config/webhooks/chungtay",
        data={"url": "http://127.0.0.1:9/nowhere", "secret": WEBHOOK_SECRET},
        timeout=5,
    ).raise_for_status()
    return emulator_base


@pytest.fixture
def webhooks_to(stripe_emulator):
    """Point the emulator's webhook at a URL (the live_server)."""

    def register(url: str):
        requests.post(
            f"{stripe_emulator}/_config/webhooks/chungtay",
            data={"url": url, "secret": WEBHOOK_SECRET},
            timeout=5,
        ).raise_for_status()

    return register


def card_payment_method(base: str, number: str) -> str:
    """What confirmCardSetup does in the browser: turn a card into a pm_ id."""
    r = requests.post(
        f"{base}/v1/payment_methods",
        auth=(SECRET_KEY, ""),
        data={
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2030",
            "card[cvc]": "123",
        },
        timeout=5,
    )
    r.raise_for_status()
    return r.json()["id"]


def authenticate_3ds(base: str, pi_id: str, client_secret: str, success: bool) -> None:
    r = requests.post(
        f"{base}/v1/payment_intents/{pi_id}/_authenticate",
        params={"success": "true" if success else "false"},
        data={"key": PUBLISHABLE_KEY, "client_secret": client_secret},
        timeout=5,
    )
    r.raise_for_status()


def signed_event(event: dict, secret: str = WEBHOOK_SECRET) -> tuple[bytes, str]:
    body = json.dumps(event)
    return body.encode(), stripe_client.sign_payload(body, secret, int(time.time()))


@pytest.fixture
def donor_an(db):
    user = User.objects.create_user("an@example.vn", "pw-an-123456", full_name="Nguyễn Văn An", role=Role.DONOR)
    DonorProfile.objects.create(user=user, kind=DonorKind.PERSON, tax_code="001085012345")
    return user


@pytest.fixture
def donor_binh(db):
    user = User.objects.create_user("binh@example.vn", "pw-binh-123456", full_name="Trần Thị Bình", role=Role.DONOR)
    DonorProfile.objects.create(user=user, kind=DonorKind.PERSON)
    return user


@pytest.fixture
def business_donor(db):
    user = User.objects.create_user("ketoan@hoasen.vn", "pw-hs-123456", full_name="Lê Hoa", role=Role.DONOR)
    DonorProfile.objects.create(
        user=user, kind=DonorKind.BUSINESS, company_name="Công ty Hoa Sen", tax_code="0100109106"
    )
    return user


@pytest.fixture
def finance_giang(db):
    return User.objects.create_user("giang@chungtay.vn", "pw-giang-123456", full_name="Vũ Thị Giang", role=Role.FINANCE)


@pytest.fixture(autouse=True)
def english_messages():
    """Services speak the active language; tests read the English source strings."""
    from django.utils import translation

    with translation.override("en"):
        yield
