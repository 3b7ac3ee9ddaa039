"""Demo donors and gifts (idempotent): a person and a business with profiles, one paid bank
gift (through a statement upload, the real path) and one pending VietQR pledge."""

from django.db import transaction
from django.utils.timezone import now

from donors.models import DonorKind, DonorProfile, Role, User

DEMO_PASSWORD = "chungtay-demo"
BUSINESS_EMAIL = "congty@chungtay.test"


@transaction.atomic
def demo_donors() -> list[tuple[str, str, str]]:
    from sponsorship.models import Appearance, Donation, Method
    from sponsorship.services import bank
    from sponsorship.services.donations import fund_key

    person = User.objects.filter(email="donor@chungtay.test").first()
    if person is not None:
        # Demo accounts are shown to people trying the platform: their email counts as verified.
        DonorProfile.objects.get_or_create(user=person, defaults={"kind": DonorKind.PERSON, "email_verified_at": now()})
    business = User.objects.filter(email=BUSINESS_EMAIL).first()
    if business is None:
        business = User.objects.create_user(BUSINESS_EMAIL, DEMO_PASSWORD, full_name="Lê Thị Hoa", role=Role.DONOR)
    DonorProfile.objects.get_or_create(
        user=business,
        defaults={
            "kind": DonorKind.BUSINESS,
            "company_name": "Công ty TNHH Hoa Sen",
            "tax_code": "0100109106",
            "email_verified_at": now(),
        },
    )
    finance = User.objects.filter(role=Role.FINANCE).first()
    gifts = [
        (business, "CTHASEN234", 3 * 379_080, Appearance.COMPANY, "Tết 2027", True),
        (person, "CTDEMANAN2", 500_000, Appearance.NAMED, "", False),
    ]
    for donor, reference, amount, appearance, campaign, paid in gifts:
        if donor is None:
            continue
        gift, _created = Donation.objects.get_or_create(
            reference=reference,
            defaults=dict(
                donor=donor,
                method=Method.BANK,
                amount_vnd=amount,
                appearance=appearance,
                campaign=campaign,
                fund_key=fund_key(campaign=campaign),
            ),
        )
        if paid and finance is not None:
            content = f"date,amount,description,bank reference\n01/11/2026,{amount},IBFT {reference} UNG HO,DEMO1\n"
            bank.statement_import(name="demo-statement.csv", content=content.encode(), by=finance)
    rows = [(BUSINESS_EMAIL, DEMO_PASSWORD, "Donor (business)")]
    transaction.on_commit(lambda: bank.match_lines())
    return rows
