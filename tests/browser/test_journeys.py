import pytest
from playwright.sync_api import expect

from donors.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_switching_language_keeps_the_page_and_translates_it(page, screenshot):
    page.goto("/localities/?q=ha+tinh&level=province")
    expect(page.locator("h1")).to_have_text("Tỉnh và xã")
    expect(page.locator("table")).to_contain_text("Tỉnh Hà Tĩnh")
    screenshot(page, "vi")
    page.select_option("#language-select", "en")
    page.wait_for_url("**/localities/?q=ha+tinh&level=province")
    expect(page.locator("h1")).to_have_text("Provinces and communes")
    expect(page.locator("table")).to_contain_text("Tỉnh Hà Tĩnh")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    screenshot(page, "en")


def test_a_staff_member_logs_in_and_sees_their_scope(page, login, make_user, ha_tinh, screenshot):
    user = make_user(Role.FRONT_REVIEWER, ha_tinh, email="reviewer.browser@example.test")
    login(user.email, "pw-Sufficiently-Long-1")
    page.goto("/accounts/me/")
    expect(page.locator("main")).to_contain_text("Tỉnh Hà Tĩnh")
    expect(page.locator("main")).to_contain_text("Cán bộ Mặt trận")
    screenshot(page, "me")


def test_a_wrong_password_says_so_and_logs_nobody_in(page, login, make_user):
    user = make_user(Role.DONOR, email="donor.browser@example.test")
    login(user.email, "not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("không đúng")
    page.goto("/accounts/me/")
    assert "/accounts/login/" in page.url  # still anonymous: redirected to log in
