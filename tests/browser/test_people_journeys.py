"""The journeys of issue 7 in Chromium: a donor, an officer, a reviewer, finance and an agency
viewer, each through the real pages, with screenshots of the key pages in tests/screenshots/.

No Celery worker runs in tests: where production hands work to a worker (draining the Stripe
inbox, matching, running an import, matching a bank statement), the test calls that task's
service itself at the moment the worker would, then lets the page show the result on its own.
"""

import csv
import io
from datetime import date

import pytest
from django.utils import formats, translation
from playwright.sync_api import expect

from beneficiaries.models import Household, Level, Locality, Member, MemberStatus, Relation, Scheme
from donors.models import Role
from sponsorship.card_models import Card
from sponsorship.enrollment import cardlist, rollups, targets
from sponsorship.enrollment.views import mask_code
from sponsorship.matching.services import match_province
from sponsorship.models import Account, BankStatement, Donation, DonationStatus, StripeEvent
from sponsorship.services import bank, ledger, stripe_events

from .conftest import log_in, log_out, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-Sufficiently-Long-1"


def near_poor_share() -> int:
    """FACTS §1: a 12-month card is 4.5 % of the base salary in force × 12; the state pays 70 %
    for a near-poor person, the donor the remaining 30 %."""
    from decimal import ROUND_HALF_UP, Decimal

    from beneficiaries.pricing import premium_schedule_on

    premium = (Decimal(premium_schedule_on(date.today()).base_salary_vnd) * Decimal("0.045") * 12).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return int(premium - (premium * Decimal("0.7")).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def vnd_vi(amount: int) -> str:
    return f"{amount:,} ₫".replace(",", ".")


def commune_of(province, n=0):
    return Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.COMMUNE, province=province).order_by("code")[n]


def member_in(commune, *, status=MemberStatus.APPROVED, name="Nguyễn Thị Mai", pid="042186000101", by=None):
    household = Household.objects.create(locality=commune, external_ref=f"HH-{pid}", poverty_class="near_poor")
    return Member.objects.create(
        household=household,
        locality=commune,
        full_name=name,
        name_ascii=name.lower(),
        date_of_birth=date(1986, 5, 4),
        sex="female",
        personal_id=pid,
        relation=Relation.HEAD,
        status=status,
        submitted_by=by,
    )


def short_date(value) -> str:
    with translation.override("vi"):
        return formats.date_format(value, "SHORT_DATE_FORMAT")


def d10a_file(tmp_path, cards) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(cardlist.D10A_HEADERS)
    writer.writerows(cardlist.d10a_rows_for_cards(cards))
    path = tmp_path / "D10a-TS.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    return str(path)


def choose_gift(page, *, province=None, commune=None, count=None, amount=None, method="card"):
    page.goto("/donate/")
    if province is not None:
        page.select_option("#id_province", str(province.pk))
    if commune is not None:
        # Filled from the chosen province: only communes where approved people wait.
        expect(page.locator("#id_commune")).to_contain_text(commune.name)
        page.select_option("#id_commune", str(commune.pk))
    if amount is not None:
        page.fill("#id_amount_vnd", str(amount))
    elif count is not None:
        page.fill("#id_cards_count", str(count))
    page.check(f"input[name=method][value={method}]")


def fill_card(page, number):
    element = page.locator("#card-element")
    element.locator("input[placeholder=number]").fill(number)
    element.locator("input[placeholder=exp_month]").fill("12")
    element.locator("input[placeholder=exp_year]").fill("30")
    element.locator("input[placeholder=cvc]").fill("123")
    element.locator("input[placeholder=postal_code]").fill("10000")


def the_gift(donor) -> Donation:
    return Donation.objects.get(donor=donor)


# --- 1. Pay with 4242, then see the card enrolled with its validity ------------------------------


def test_1_a_donor_pays_with_4242_and_later_sees_the_card_enrolled_with_its_validity(
    page, stripe_emulator, make_user, ha_tinh, tmp_path, screenshot
):
    commune = commune_of(ha_tinh)
    member = member_in(commune)
    donor = make_user(Role.DONOR, email="an.donor@example.test")
    officer = make_user(Role.COMMUNE_OFFICER, commune, email="officer.ht@example.test")
    finance = make_user(Role.FINANCE, email="finance@example.test")

    targets.seed_targets(date.today().year)
    log_in(page, donor.email, PASSWORD)
    choose_gift(page, province=ha_tinh, commune=commune, count=1)
    # Where: each province with its gap to this year's target (1,300,000 − 1,280,000 covered).
    expect(page.locator("#id_province")).to_contain_text("Tỉnh Hà Tĩnh · còn 20.000 người chưa có thẻ")
    # The price breakdown is there before paying: premium − state support = your share.
    share = near_poor_share()
    expect(page.locator("#bd-share")).to_have_text(vnd_vi(share))
    expect(page.locator("#bd-total")).to_contain_text(vnd_vi(share))
    screenshot(page, "donate")
    page.click("#donate-submit")
    page.wait_for_url("**/pay/")
    fill_card(page, "4242424242424242")
    screenshot(page, "pay")
    page.click("#pay-button")
    page.wait_for_url("**/thanks/")
    expect(page.locator("#status")).to_have_attribute("data-status", "succeeded")
    screenshot(page, "thanks")
    gift = the_gift(donor)
    assert gift.amount_received_vnd == share and gift.locality == commune
    assert ledger.natural_balance(Account.DONOR_FUNDS, gift.fund_key) == share

    # The matching worker's run for Hà Tĩnh turns the gift into the member's card.
    assert match_province(province_id=ha_tinh.pk).cards_funded == 1
    card = Card.objects.get(member=member)

    # The commune officer lists the funded card in a batch for the agency and sends it.
    log_out(page)
    log_in(page, officer.email, PASSWORD)
    page.goto("/enrollment/batches/")
    page.select_option("#id_commune", str(commune.pk))
    page.click("main form button[type=submit] >> nth=0")
    expect(page.locator("#batches")).to_contain_text(commune.name)
    page.get_by_role("button", name="Đã nộp cho cơ quan BHXH").click()
    expect(page.get_by_role("button", name="Đã nộp cho cơ quan BHXH")).to_have_count(0)
    screenshot(page, "batch-submitted")

    # Finance imports the agency's card list (D10a-TS) that comes back.
    log_out(page)
    log_in(page, finance.email, PASSWORD)
    page.goto("/enrollment/batches/")
    page.set_input_files("#id_file", d10a_file(tmp_path, [card]))
    page.locator("form[action$='/card-lists/'] button").click()
    expect(page.locator(".messages")).to_contain_text("1")
    screenshot(page, "cardlist-imported")
    card.refresh_from_db()
    assert card.status == "enrolled" and card.valid_from and card.valid_to

    # The donor sees the card, masked, enrolled, with its validity.
    log_out(page)
    log_in(page, donor.email, PASSWORD)
    page.goto("/donor/")
    screenshot(page, "my-gifts")
    page.locator(f"a[href='/enrollment/gifts/{gift.public_id}/']").first.click()
    trace = page.locator("#trace")
    expect(trace).to_contain_text(mask_code(card.card_code))
    expect(trace).to_contain_text(short_date(card.valid_from))
    expect(trace).to_contain_text(short_date(card.valid_to))
    assert card.card_code not in page.content() and member.full_name not in page.content()
    screenshot(page, "gift-trace")


# --- 2. 3-D Secure, completed and failed ----------------------------------------------------------


@pytest.mark.parametrize("completed", [True, False], ids=["completed", "failed"])
def test_2_three_d_secure_completed_or_failed(
    page, live_server, stripe_emulator, webhooks_to, make_user, screenshot, completed
):
    webhooks_to(f"{live_server.url}/stripe/webhook/")
    donor = make_user(Role.DONOR, email="binh.donor@example.test")
    log_in(page, donor.email, PASSWORD)
    choose_gift(page, amount=500_000)
    page.click("#donate-submit")
    page.wait_for_url("**/pay/")
    fill_card(page, "4000002500003155")
    page.click("#pay-button")
    # The bank asks twice with this card: when it is saved, and for this payment.
    page.get_by_role("button", name="Complete authentication").click()
    challenge = page.get_by_role("button", name="Fail authentication")
    expect(challenge).to_be_visible()
    screenshot(page, "challenge")
    gift = the_gift(donor)
    if completed:
        page.get_by_role("button", name="Complete authentication").click()
        page.wait_for_url("**/thanks/")
        # Stripe's signed payment_intent.succeeded reaches the live server; the worker drains
        # the inbox; the page, polling, turns to paid without a reload.
        wait_until(
            lambda: StripeEvent.objects.filter(type="payment_intent.succeeded").exists(), what="the signed webhook"
        )
        stripe_events.drain_inbox()
        expect(page.locator("#status")).to_have_attribute("data-status", "succeeded")
        expect(page.locator("#status")).to_have_text("Đã thanh toán")
        screenshot(page, "thanks")
        gift.refresh_from_db()
        assert gift.status == DonationStatus.SUCCEEDED
        assert ledger.natural_balance(Account.DONOR_FUNDS, gift.fund_key) == 500_000
    else:
        challenge.click()
        expect(page.locator("#card-message")).to_contain_text("3-D Secure")
        expect(page.locator("#pay-button")).to_be_enabled()
        screenshot(page, "refused")
        gift.refresh_from_db()
        assert gift.status != DonationStatus.SUCCEEDED and gift.amount_received_vnd == 0
        assert ledger.trial_balance().get(Account.DONOR_FUNDS, 0) == 0
    assert ledger.check_invariants() == []


# --- 3. A declined card ---------------------------------------------------------------------------


def test_3_a_declined_card_says_so_clearly_and_no_money_is_counted(page, stripe_emulator, make_user, screenshot):
    donor = make_user(Role.DONOR, email="chi.donor@example.test")
    log_in(page, donor.email, PASSWORD)
    choose_gift(page, amount=400_000)
    page.click("#donate-submit")
    page.wait_for_url("**/pay/")
    fill_card(page, "4000000000000341")
    page.click("#pay-button")
    message = page.locator("#card-message")
    expect(message).to_contain_text("Thẻ bị từ chối")
    expect(message).to_contain_text("Không có khoản tiền nào bị trừ")
    assert "/pay/" in page.url  # still on the payment page, free to try another card
    screenshot(page, "declined")
    gift = the_gift(donor)
    assert gift.status == DonationStatus.FAILED and gift.amount_received_vnd == 0
    balances = ledger.trial_balance()
    assert balances.get(Account.DONOR_FUNDS, 0) == 0 and balances.get(Account.STRIPE_CLEARING, 0) == 0
    assert ledger.check_invariants() == []
    targets.seed_targets(date.today().year)
    page.goto("/")
    expect(page.locator("#stat-raised")).to_have_text("0 ₫")
    expect(page.locator("#progress")).to_contain_text("Tỉnh Hà Tĩnh")
    screenshot(page, "home")


# --- 4. A VietQR pledge, then a bank statement that matches it -------------------------------------


def test_4_a_vietqr_pledge_is_matched_by_the_uploaded_bank_statement(
    page, other_page, make_user, tmp_path, settings, screenshot
):
    settings.MEDIA_ROOT = tmp_path
    donor = make_user(Role.DONOR, email="dung.donor@example.test")
    finance = make_user(Role.FINANCE, email="giang.finance@example.test")
    log_in(page, donor.email, PASSWORD)
    choose_gift(page, amount=300_000, method="bank")
    page.click("#donate-submit")
    page.wait_for_url("**/pay/")
    gift = the_gift(donor)
    expect(page.locator("#memo")).to_have_text(gift.reference)
    expect(page.locator("img[alt*='VietQR']")).to_be_visible()
    screenshot(page, "vietqr")
    page.get_by_role("link", name="Tôi đã chuyển khoản").click()
    expect(page.locator("#status")).to_have_attribute("data-status", "pending")

    # Finance uploads the bank's statement; the matcher (a worker) pairs the line with the pledge.
    statement = tmp_path / "vcb-thang-11.csv"
    statement.write_text(
        "Ngày,Số tiền,Nội dung,Số bút toán\n"
        f"{date.today():%d/%m/%Y},300.000,IBFT {gift.reference.lower()} ung ho the BHYT,FT26333000001\n"
        f"{date.today():%d/%m/%Y},50.000,chuyen tien an trua,FT26333000002\n",
        encoding="utf-8",
    )
    log_in(other_page, finance.email, PASSWORD)
    other_page.goto("/finance/")
    other_page.set_input_files("#id_file", str(statement))
    other_page.get_by_role("button", name="Tải lên").click()
    expect(other_page.locator(".messages")).to_contain_text("2")
    bank.match_lines(statement_id=BankStatement.objects.get().pk)
    other_page.reload()
    screenshot(other_page, "finance")

    # The donor's thank-you page, still open, turns to paid by itself.
    expect(page.locator("#status")).to_have_attribute("data-status", "succeeded")
    screenshot(page, "thanks")
    gift.refresh_from_db()
    assert gift.amount_received_vnd == 300_000
    assert ledger.natural_balance(Account.DONOR_FUNDS, gift.fund_key) == 300_000
    assert ledger.check_invariants() == []


# --- 5. An officer imports a list with bad rows ---------------------------------------------------


def test_5_an_officer_imports_a_list_with_bad_rows_and_downloads_the_error_file(
    page, make_user, ha_tinh, tmp_path, settings, screenshot
):
    from beneficiaries.identifiers import make_personal_id
    from beneficiaries.tasks import import_job_run

    settings.MEDIA_ROOT = tmp_path
    commune = commune_of(ha_tinh)
    officer = make_user(Role.COMMUNE_OFFICER, commune, email="officer.import@example.test")
    dob = date(1975, 3, 4)
    good = make_personal_id(province_code=42, date_of_birth=dob, sex="male", serial=1)
    rows = [
        "Mã hộ,Họ và tên,Ngày sinh,Giới tính,Số CCCD/Số định danh cá nhân,Mã số BHXH,Dân tộc,"
        "Quan hệ với chủ hộ,Địa chỉ,Mã xã,Hộ nghèo/Hộ cận nghèo,Học sinh/Sinh viên",
        f"HT1,Nguyễn Văn Hùng,04/03/1975,Nam,{good},,Kinh,Chủ hộ,Tổ 1,{commune.code},Hộ cận nghèo,",
        f"HT2,Trần Văn Sai,01/01/1990,Nam,042080000009,,Kinh,Chủ hộ,Tổ 2,{commune.code},Hộ cận nghèo,",
        "HT3,Phạm Thị Lạ,01/01/1990,Nữ,042190000011,,Kinh,Chủ hộ,Tổ 3,99999,Hộ cận nghèo,",
    ]
    path = tmp_path / "danh-sach-xa.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    log_in(page, officer.email, PASSWORD)
    page.goto("/registry/imports/")
    page.set_input_files("#file", str(path))
    screenshot(page, "upload")
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/registry/imports/*/")
    job_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    import_job_run.run(job_id)  # the worker's part; the page refreshes itself until done
    download_link = page.get_by_role("link", name="Tải tệp lỗi (CSV)")
    expect(download_link).to_be_visible()
    expect(page.locator("main")).to_contain_text("2")
    screenshot(page, "errors")
    with page.expect_download() as info:
        download_link.click()
    errors = open(info.value.path(), encoding="utf-8-sig").read()
    assert "date_of_birth" in errors and "commune_code" in errors
    assert "Nguyễn Văn Hùng" not in errors  # the good row is not an error
    assert Member.objects.filter(full_name="Nguyễn Văn Hùng", status=MemberStatus.SUBMITTED).exists()


# --- 6. A reviewer approves; a reviewer of another province cannot see the member -----------------


def test_6_a_reviewer_approves_and_a_reviewer_of_another_province_cannot_see_the_member(
    page, other_page, make_user, ha_tinh, ha_noi, screenshot
):
    commune = commune_of(ha_tinh)
    officer = make_user(Role.COMMUNE_OFFICER, commune, email="officer.review@example.test")
    member = member_in(commune, status=MemberStatus.SUBMITTED, name="Lê Văn Tâm", pid="042079000123", by=officer)
    reviewer = make_user(Role.FRONT_REVIEWER, ha_tinh, email="reviewer.ht@example.test")
    outsider = make_user(Role.FRONT_REVIEWER, ha_noi, email="reviewer.hn@example.test")

    log_in(page, reviewer.email, PASSWORD)
    page.goto("/registry/")
    expect(page.locator("main table")).to_contain_text("Lê Văn Tâm")
    screenshot(page, "queue")
    page.get_by_role("link", name="Lê Văn Tâm").click()
    page.get_by_role("button", name="Duyệt", exact=True).click()
    expect(page.locator(".messages")).to_be_visible()
    screenshot(page, "approved")
    member.refresh_from_db()
    assert member.status == MemberStatus.APPROVED

    log_in(other_page, outsider.email, PASSWORD)
    other_page.goto("/registry/")
    expect(other_page.locator("main")).not_to_contain_text("Lê Văn Tâm")
    screenshot(other_page, "other-province-queue")
    response = other_page.goto(f"/registry/members/{member.pk}/")
    assert response.status == 404
    assert "Lê Văn Tâm" not in other_page.content()


# --- 7. The agency dashboard shows the new enrollment against the target --------------------------


def test_7_the_agency_dashboard_shows_the_new_enrollment_against_the_target(page, make_user, ha_tinh, screenshot):
    from sponsorship.enrollment import batches
    from tests.matching.conftest import make_gift

    commune = commune_of(ha_tinh)
    member = member_in(commune)
    donor = make_user(Role.DONOR, email="em.donor@example.test")
    make_gift(donor, near_poor_share(), locality=ha_tinh)
    match_province(province_id=ha_tinh.pk)
    card = Card.objects.get(member=member)
    batch = batches.batch_create(locality=commune, product="hi_household", period=card.period_start)
    batches.batch_submit(batch_id=batch.pk)
    buf = io.StringIO()
    csv.writer(buf).writerows([cardlist.D10A_HEADERS, *cardlist.d10a_rows_for_cards([card])])
    cardlist.cardlist_import(content=buf.getvalue().encode(), file_name="d10a.csv")
    card.refresh_from_db()
    year = card.valid_from.year
    targets.seed_targets(year)
    rollups.rollups_recompute()  # the nightly job

    viewer = make_user(Role.AGENCY_VIEWER, ha_tinh, email="agency.ht@example.test")
    log_in(page, viewer.email, PASSWORD)
    page.goto(f"/enrollment/dashboard/?year={year}&type=hi")
    row = page.locator("#dashboard tr", has_text="Tỉnh Hà Tĩnh")
    # Hà Tĩnh's target 1,300,000 with 1,280,000 already covered: one sponsored card leaves 19,999.
    expect(row).to_contain_text("1.300.000")
    expect(row).to_contain_text("19.999")
    expect(row.locator("td").nth(2)).to_have_text("1")
    screenshot(page, "dashboard")
    row.get_by_role("link").click()
    expect(page.locator("#dashboard")).to_contain_text(commune.name)
    screenshot(page, "communes")


# --- The public pages on a phone ------------------------------------------------------------------


def test_home_and_sponsor_pages_fit_a_phone_and_every_field_has_a_label(
    chromium, live_server, django_db_setup, make_user, screenshot
):
    from .conftest import new_page

    targets.seed_targets(date.today().year)
    donor = make_user(Role.DONOR, email="phone.donor@example.test")
    page = new_page(chromium, live_server.url, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page.goto("/")
        expect(page.locator("#progress")).to_contain_text("Thành phố Hà Nội")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "home")
        log_in(page, donor.email, PASSWORD)
        page.goto("/donate/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        unlabelled = page.evaluate(
            """[...document.querySelectorAll('main input:not([type=hidden]), main select, main textarea')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)"""
        )
        assert unlabelled == []
        # Keyboard: the first Tab reaches the skip link, which leads to the content.
        page.keyboard.press("Tab")
        expect(page.locator("a.skip")).to_be_focused()
        screenshot(page, "donate")
        # In English the same page, the amounts in the English format.
        page.select_option("#language-select", "en")
        page.wait_for_url("**/donate/")
        expect(page.locator("h1")).to_have_text("Sponsor a card")
        expect(page.locator("#bd-share")).to_have_text(f"₫{near_poor_share():,}")
    finally:
        page.context.close()
