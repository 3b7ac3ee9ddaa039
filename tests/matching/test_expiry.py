"""Money unmatched too long (or past the list deadline) goes where most needed if the donor
agreed, otherwise a refund is offered; the donor is emailed either way (sent-at after sending)."""

import datetime
from datetime import timedelta

from django.core import mail
from django.utils import timezone

from sponsorship.card_models import Card
from sponsorship.matching import expiry, services
from sponsorship.matching.feature_models import DonorChoice, ExpiryOutcome, GiftExpiry
from sponsorship.models import Donation
from sponsorship.services.ledger import check_invariants, fund_balances

from .conftest import PERIOD, communes, make_gift, make_household

SHARE = 379_080


def old_gift(donor, amount, *, days=90, consent=False, **restriction):
    gift = make_gift(donor, amount, **restriction)
    Donation.objects.filter(pk=gift.pk).update(
        paid_at=timezone.now() - timedelta(days=days), has_redirect_consent=consent
    )
    gift.refresh_from_db()
    return gift


def test_consenting_donors_money_goes_where_most_needed_and_funds_a_card(ha_tinh, ha_noi, donor):
    make_household(communes(ha_tinh)[0])
    gift = old_gift(donor, SHARE, consent=True, locality=communes(ha_noi)[0])  # nobody waits there
    old_fund = gift.fund_key
    result = expiry.expire_unmatched()
    assert result["redirected"] == 1 and result["notified"] == 1
    gift.refresh_from_db()
    assert gift.locality is None and gift.fund_key != old_fund
    assert fund_balances("donor_funds") == {old_fund: 0, gift.fund_key: SHARE}
    x = GiftExpiry.objects.get(donation=gift)
    assert x.outcome == ExpiryOutcome.REDIRECTED and x.notified_at is not None
    assert len(mail.outbox) == 1 and gift.reference in mail.outbox[0].subject
    assert services.match_province(province_id=ha_tinh.pk, period_start=PERIOD).cards_funded == 1
    assert Card.objects.get().allocations.get().donation == gift
    assert check_invariants() == []
    assert expiry.expire_unmatched() == {"redirected": 0, "refund_offered": 0, "notified": 0}  # once per gift


def test_without_consent_a_refund_is_offered_and_the_donor_answers(ha_noi, donor, make_user):
    gift = old_gift(donor, SHARE, locality=communes(ha_noi)[0])
    recent = make_gift(donor, SHARE, locality=communes(ha_noi)[0])  # not due yet
    result = expiry.expire_unmatched()
    assert result["refund_offered"] == 1
    x = GiftExpiry.objects.get()
    assert x.donation == gift and x.amount_vnd == SHARE
    assert str(x.token) in mail.outbox[0].body
    assert not GiftExpiry.objects.filter(donation=recent).exists()
    x = expiry.donor_choose(expiry=x, choice=DonorChoice.REFUND, by=donor)
    assert x.donor_choice == DonorChoice.REFUND and x.chosen_at
    # The first answer stands.
    x = expiry.donor_choose(expiry=x, choice=DonorChoice.REDIRECT, by=donor)
    assert x.donor_choice == DonorChoice.REFUND
    gift.refresh_from_db()
    assert gift.locality is not None


def test_past_the_list_deadline_every_unmatched_gift_is_due(ha_noi, donor, settings):
    old_gift(donor, SHARE, days=1, locality=communes(ha_noi)[0])  # paid yesterday
    assert expiry.expire_unmatched()["refund_offered"] == 0
    settings.CHUNGTAY_CAMPAIGN_LIST_DEADLINE = timezone.localdate() - datetime.timedelta(days=1)
    assert expiry.expire_unmatched()["refund_offered"] == 1


def test_a_failed_email_is_retried_and_recorded_only_when_sent(ha_noi, donor, settings):
    old_gift(donor, SHARE, locality=communes(ha_noi)[0])
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 1  # nothing listens
    assert expiry.expire_unmatched() == {"redirected": 0, "refund_offered": 1, "notified": 0}
    assert GiftExpiry.objects.get().notified_at is None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert expiry.notify_pending() == 1
    assert GiftExpiry.objects.get().notified_at is not None and len(mail.outbox) == 1


def test_a_donor_page_lets_only_the_gifts_donor_answer(client, ha_noi, donor, make_user):
    gift = old_gift(donor, SHARE, locality=communes(ha_noi)[0])
    expiry.expire_unmatched()
    x = GiftExpiry.objects.get()
    url = f"/matching/unmatched/{x.token}/"
    client.force_login(make_user("donor"))
    assert client.get(url).status_code == 404
    client.force_login(donor)
    page = client.get(url)
    assert page.status_code == 200 and gift.reference in page.content.decode()
    assert gift.reference in client.get("/donor/").content.decode()  # listed on the dashboard
    client.post(url, {"choice": "redirect"})
    gift.refresh_from_db()
    x.refresh_from_db()
    assert x.donor_choice == "redirect" and gift.locality is None


def test_fully_matched_gifts_do_not_block_the_batch(ha_tinh, ha_noi, donor):
    make_household(communes(ha_tinh)[0])
    old_gift(donor, SHARE, days=100)  # fully matched below
    services.match_province(province_id=ha_tinh.pk, period_start=PERIOD)
    due = old_gift(donor, SHARE, days=90, locality=communes(ha_noi)[0])
    assert expiry.expire_unmatched(limit=1)["refund_offered"] == 1
    assert GiftExpiry.objects.get().donation == due
