"""One small, real world for the hardening suites: the ten personas of the access matrix and
one object of each kind their URLs take (a household and member in commune X, donor A's paid
gift, a card it funded, an agency batch, an import job, a bank line).

Province X is Hà Tĩnh (42), province Y is Hà Nội (1); commune X is Hà Tĩnh's first commune.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from django.core.files.base import ContentFile

from beneficiaries.models import (
    Household,
    ImportJob,
    ImportRowError,
    Level,
    Locality,
    Member,
    MemberStatus,
    Relation,
    Scheme,
)
from donors.models import DonorKind, DonorProfile, Role, StaffScope, User
from sponsorship.card_models import Card
from sponsorship.enrollment import batches
from sponsorship.matching.models import Allocation, MatchingRun, RunStatus
from sponsorship.models import BankStatement, BankStatementLine, Donation
from sponsorship.services.ledger import credit, debit, ledger_post

PASSWORD = "pw-Hardening-Suite-1"

# The matrix's columns, in this order everywhere.
ROLES = (
    "anon",
    "donor_a",
    "donor_b",
    "business",
    "officer_x",
    "reviewer_x",
    "reviewer_y",
    "agency",
    "finance",
    "admin",
)

# Personal data of the member and household in commune X: distinctive values that appear
# nowhere else, so "absent from the body" is a meaningful check.
PID = "042185907531"
DOB = date(1985, 3, 27)
DOB_FORMS = ("1985-03-27", "27/03/1985", "27-03-1985", "March 27, 1985", "27 tháng 3 năm 1985")
ADDRESS = "Xóm Quỳnh Zyxwv 77"
PHONE = "0912777315"
# Donor A's own profile: donor B, the public and staff must not see it either.
DONOR_A_PHONE = "0987000111"
DONOR_A_ADDRESS = "Ngõ Qwertz 12, Hà Nội"
DONOR_A_TAX = "001085077123"

FUND = "loc:any|hi_household"


def pii_values() -> list[str]:
    return [PID, ADDRESS, PHONE, *DOB_FORMS]


def donor_a_private() -> list[str]:
    return [DONOR_A_PHONE, DONOR_A_ADDRESS, DONOR_A_TAX]


@dataclass
class World:
    users: dict[str, User | None] = field(default_factory=dict)
    province_x: Locality | None = None
    province_y: Locality | None = None
    commune_x: Locality | None = None
    household: Household | None = None
    member: Member | None = None
    gift: Donation | None = None
    expiry: object = None  # a refund offer on part of the gift's money (matching's GiftExpiry)
    offer: object = None  # the business's match offer (switched off: it matches nothing here)
    card: Card | None = None
    batch: object = None
    import_job: ImportJob | None = None
    bank_line: BankStatementLine | None = None


def _province(code: int) -> Locality:
    return Locality.objects.get(scheme=Scheme.CURRENT, level=Level.PROVINCE, code=code)


def _user(email: str, role: str, *scopes: Locality, superuser: bool = False) -> User:
    if superuser:
        user = User.objects.create_superuser(email, PASSWORD, full_name=email.split("@")[0])
    else:
        user = User.objects.create_user(email, PASSWORD, role=role, full_name=email.split("@")[0])
    for loc in scopes:
        StaffScope.objects.create(user=user, locality=loc)
    return user


def build_world() -> World:
    w = World()
    w.province_x, w.province_y = _province(42), _province(1)
    w.commune_x = Locality.objects.filter(level=Level.COMMUNE, province=w.province_x).order_by("code").first()

    donor_a = _user("donor.a@hardening.test", Role.DONOR)
    DonorProfile.objects.create(
        user=donor_a, kind=DonorKind.PERSON, tax_code=DONOR_A_TAX, phone=DONOR_A_PHONE, address=DONOR_A_ADDRESS
    )
    donor_b = _user("donor.b@hardening.test", Role.DONOR)
    DonorProfile.objects.create(user=donor_b, kind=DonorKind.PERSON)
    business = _user("ketoan@business.hardening.test", Role.DONOR)
    DonorProfile.objects.create(
        user=business, kind=DonorKind.BUSINESS, company_name="Công ty Kiểm Thử", tax_code="0100109106"
    )
    w.users = {
        "anon": None,
        "donor_a": donor_a,
        "donor_b": donor_b,
        "business": business,
        "officer_x": _user("officer.x@hardening.test", Role.COMMUNE_OFFICER, w.commune_x),
        "reviewer_x": _user("reviewer.x@hardening.test", Role.FRONT_REVIEWER, w.province_x),
        "reviewer_y": _user("reviewer.y@hardening.test", Role.FRONT_REVIEWER, w.province_y),
        "agency": _user("agency.x@hardening.test", Role.AGENCY_VIEWER, w.province_x),
        "finance": _user("finance@hardening.test", Role.FINANCE),
        "admin": _user("admin@hardening.test", Role.ADMIN, superuser=True),
    }

    w.household = Household.objects.create(
        locality=w.commune_x, external_ref="HARD-1", address=ADDRESS, phone=PHONE, poverty_class="near_poor"
    )
    w.member = Member.objects.create(
        household=w.household,
        locality=w.commune_x,
        full_name="Hoàng Thị Kiểm",
        name_ascii="hoang thi kiem",
        date_of_birth=DOB,
        sex="female",
        personal_id=PID,
        relation=Relation.HEAD,
        status=MemberStatus.SUBMITTED,
        submitted_by=w.users["officer_x"],
    )

    w.gift = Donation.objects.create(
        donor=donor_a,
        method="bank",
        amount_vnd=10_000_000,
        appearance="named",
        reference="CTHARD0001",
        fund_key=FUND,
        status="succeeded",
        amount_received_vnd=10_000_000,
    )
    ledger_post(
        key=f"hardening:paid:{w.gift.pk}",
        entries=[debit("bank_clearing", 10_000_000), credit("donor_funds", 10_000_000, FUND)],
        donation=w.gift,
    )
    from sponsorship.matching.feature_models import GiftExpiry

    w.expiry = GiftExpiry.objects.create(
        donation=w.gift, outcome="refund_offered", amount_vnd=100_000, reason="unmatched after 60 days"
    )
    from django.utils import timezone

    from sponsorship.matching.feature_models import MatchOffer

    w.offer = MatchOffer.objects.create(
        business=business, name="Hardening match", cap_vnd=1_000_000, is_active=False, starts_at=timezone.now()
    )
    w.card = Card.objects.create(
        member=w.member,
        household=w.household,
        locality=w.commune_x,
        product="hi_household",
        months=12,
        period_start=date(2026, 1, 1),
        premium_vnd=1_263_600,
        state_share_vnd=884_520,
        donor_share_vnd=379_080,
    )
    w.run = MatchingRun.objects.create(status=RunStatus.DONE, cards_funded=1, allocations=1)
    Allocation.objects.create(
        run=w.run, donation=w.gift, card=w.card, fund=FUND, amount_vnd=379_080, score=0, rule_version=0
    )
    ledger_post(
        key=f"hardening:alloc:{w.card.pk}",
        entries=[debit("donor_funds", 379_080, FUND), credit("allocated_to_cards", 379_080, FUND)],
    )
    w.batch = batches.batch_create(
        locality=w.commune_x, product="hi_household", period=date(2026, 1, 1), by=w.users["officer_x"]
    )

    w.import_job = ImportJob.objects.create(
        created_by=w.users["officer_x"],
        file=ContentFile(b"ho_ten\n", name="hardening.csv"),
        original_name="hardening.csv",
        status="failed",
    )
    ImportRowError.objects.create(job=w.import_job, row_number=2, field="ho_ten", reason='=HYPERLINK("x")')

    statement = BankStatement.objects.create(file_name="hardening.csv", uploaded_by=w.users["finance"])
    w.bank_line = BankStatementLine.objects.create(
        statement=statement,
        fingerprint="hardening-line-1",
        booked_on=date(2026, 1, 5),
        amount_vnd=200_000,
        description="ung ho khong ma",
    )
    return w
