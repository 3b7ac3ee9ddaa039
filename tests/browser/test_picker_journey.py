"""The sponsor page's household picker and "where most needed" consent in Chromium: a donor
chooses a province, a commune, then one waiting household (shown by size, class and share, no
personal data), agrees that unmatched money may go where most needed, and pledges by bank
transfer; the gift carries the consent and holds that household."""

import pytest
from playwright.sync_api import expect

from donors.models import Role
from sponsorship.matching.feature_models import Hold
from sponsorship.models import Donation

from .conftest import log_in
from .test_people_journeys import PASSWORD, commune_of, member_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_donor_picks_a_household_agrees_to_where_most_needed_and_pledges(page, make_user, ha_tinh, settings):
    settings.ENROLLMENT_PUBLIC_MIN_CELL = 3
    commune = commune_of(ha_tinh)
    members = [
        member_in(commune, name=f"Phạm Văn Chờ {i}", pid=f"04208600{i:04d}") for i in range(1, 4)
    ]  # three households of one person each
    donor = make_user(Role.DONOR, email="hoa.donor@example.test")
    log_in(page, donor.email, PASSWORD)
    page.goto("/donate/")
    page.select_option("#id_province", str(ha_tinh.pk))
    expect(page.locator("#id_commune")).to_contain_text(commune.name)
    page.select_option("#id_commune", str(commune.pk))
    picker = page.locator("#id_household")
    expect(picker.locator("option")).to_have_count(4)  # "any household" + three
    text = picker.inner_text()
    assert "1 người" in text and all(m.full_name not in text and m.personal_id not in text for m in members)
    picker.select_option(index=2)
    page.check("#id_has_redirect_consent")
    page.check("input[name=method][value=bank]")
    page.click("#donate-submit")
    page.wait_for_url("**/pay/")
    gift = Donation.objects.get(donor=donor)
    assert gift.has_redirect_consent and gift.locality == commune
    hold = Hold.objects.get(donation=gift, status="active")
    assert hold.household_id in {m.household_id for m in members}
    assert gift.amount_vnd > 0
