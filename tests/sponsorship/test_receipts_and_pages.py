import re

import pytest
from django.core import mail

from sponsorship.models import DonationStatus, Method, Receipt
from sponsorship.services import bank, receipts
from sponsorship.services.donations import donation_create

pytestmark = pytest.mark.django_db


def paid_bank_gift(donor, finance, amount=600_000, **kw):
    gift = donation_create(donor=donor, method=Method.BANK, amount_vnd=amount, **kw)[0]
    content = f"date,amount,description\n01/11/2026,{amount},CK {gift.reference}\n".encode()
    bank.statement_import(name="s.csv", content=content, by=finance)
    bank.match_lines()
    gift.refresh_from_db()
    return gift


def test_a_paid_gift_gets_one_receipt_emailed_once_with_a_pdf(business_donor, finance_giang):
    gift = paid_bank_gift(business_donor, finance_giang, appearance="company", campaign="Tết 2027")
    receipts.issue_and_send(gift.pk)
    receipts.issue_and_send(gift.pk)
    assert Receipt.objects.filter(donation=gift).count() == 1
    assert len(mail.outbox) == 1
    name, pdf, mimetype = mail.outbox[0].attachments[0]
    assert mimetype == "application/pdf"
    assert pdf.startswith(b"%PDF")
    assert gift.reference in mail.outbox[0].body


def test_no_receipt_before_the_money_arrives(donor_an):
    gift = donation_create(donor=donor_an, method=Method.BANK, amount_vnd=100_000)[0]
    assert receipts.issue_and_send(gift.pk) is None
    assert mail.outbox == []


def test_the_donor_downloads_the_receipt_from_the_dashboard(client, donor_an, finance_giang):
    gift = paid_bank_gift(donor_an, finance_giang)
    assert gift.status == DonationStatus.SUCCEEDED
    client.force_login(donor_an)
    assert f"/donate/{gift.public_id}/receipt.pdf" in client.get("/donor/").content.decode()
    response = client.get(f"/donate/{gift.public_id}/receipt.pdf")
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")


def test_the_donate_page_loads_the_emulators_stripe_js_when_offline(client, donor_an, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:8420"
    client.force_login(donor_an)
    response = client.post(
        "/donate/", {"method": "card", "amount_vnd": "300000", "appearance": "named", "idempotency_key": "form-1"}
    )
    assert response.status_code == 302
    again = client.post(
        "/donate/", {"method": "card", "amount_vnd": "300000", "appearance": "named", "idempotency_key": "form-1"}
    )
    assert again["Location"] == response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert "http://127.0.0.1:8420/js.stripe.com/v3/" in page


def test_the_donate_page_uses_real_stripe_js_with_real_keys(client, donor_an, settings):
    settings.STRIPE_API_BASE = ""
    client.force_login(donor_an)
    gift = donation_create(donor=donor_an, method=Method.CARD, amount_vnd=300_000)[0]
    assert "https://js.stripe.com/v3/" in client.get(f"/donate/{gift.public_id}/pay/").content.decode()


def test_the_bank_pledge_page_shows_the_qr_and_the_reference(client, donor_an):
    gift = donation_create(donor=donor_an, method=Method.BANK, amount_vnd=300_000)[0]
    client.force_login(donor_an)
    page = client.get(f"/donate/{gift.public_id}/pay/").content.decode()
    assert "data:image/svg+xml;base64," in page
    assert gift.reference in page


def test_finance_sees_the_ledger_and_a_donor_does_not(client, donor_an, finance_giang):
    paid_bank_gift(donor_an, finance_giang)
    client.force_login(donor_an)
    assert client.get("/finance/").status_code == 403
    client.force_login(finance_giang)
    body = client.get("/finance/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "bank_clearing" in body
    assert 'id="ledger-ok"' in body
    # The trial balance names each account and formats its balance as money, like every page.
    assert re.search(r"Bank clearing <code>bank_clearing</code></td><td class=\"num\">₫600,000<", body)


def test_the_donate_page_speaks_vietnamese_by_default(client, donor_an):
    from django.core.management import call_command

    call_command("compile_translations")
    client.force_login(donor_an)
    body = client.get("/donate/", HTTP_ACCEPT_LANGUAGE="vi").content.decode()
    assert "Ủng hộ bảo hiểm y tế" in body


def test_public_figures_are_computed_once_per_cache_period_and_every_time_when_off(settings, client):
    from django.core.cache import cache

    from sponsorship.views import public_figures

    cache.clear()
    calls = []

    def compute():
        calls.append(1)
        return {"gap": 42}

    settings.CHUNGTAY_PUBLIC_FIGURES_CACHE_SECONDS = 0
    assert public_figures("t", compute) == public_figures("t", compute) == {"gap": 42}
    assert len(calls) == 2
    settings.CHUNGTAY_PUBLIC_FIGURES_CACHE_SECONDS = 60
    assert public_figures("t", compute) == public_figures("t", compute) == {"gap": 42}
    assert len(calls) == 3  # the second read came from Redis
    first = client.get("/").context["progress"]
    assert client.get("/").context["progress"] == first
    cache.clear()
