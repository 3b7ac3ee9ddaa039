import pytest
from django.core.management import call_command

from donors.models import DonorProfile
from sponsorship.models import Donation, DonationStatus
from sponsorship.services import ledger


@pytest.mark.django_db(transaction=True)
def test_the_demo_seed_creates_a_business_donor_with_a_paid_gift_and_can_run_twice():
    call_command("load_localities")
    call_command("seed_demo")
    call_command("seed_demo")
    profile = DonorProfile.objects.get(user__email="congty@chungtay.test")
    assert profile.kind == "business" and profile.tax_code == "0100109106"
    paid = Donation.objects.get(reference="CTHASEN234")
    assert paid.status == DonationStatus.SUCCEEDED
    assert Donation.objects.get(reference="CTDEMANAN2").status == DonationStatus.PENDING
    assert ledger.natural_balance("donor_funds") == paid.amount_vnd
