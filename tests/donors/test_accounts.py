import re

import pytest
from django.core import mail

from donors.models import DonorProfile, User
from sponsorship.models import Method
from sponsorship.services.donations import donation_create

pytestmark = pytest.mark.django_db


def test_a_business_signs_up_with_a_valid_tax_code_and_gets_a_verification_email(client):
    response = client.post(
        "/donor/signup/",
        {
            "email": "KeToan@HoaSen.vn",
            "full_name": "Lê Hoa",
            "password": "a-long-unusual-passphrase",
            "kind": "business",
            "company_name": "Công ty Hoa Sen",
            "tax_code": "0100109106",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(email="ketoan@hoasen.vn")
    assert user.donor_profile.company_name == "Công ty Hoa Sen"
    assert user.donor_profile.email_verified_at is None
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/donor/verify/\S+/)", mail.outbox[0].body).group(1)
    client.get(link)
    assert DonorProfile.objects.get(user=user).email_verified_at is not None


def test_sign_up_with_a_bad_tax_code_is_refused_with_a_message(client):
    response = client.post(
        "/donor/signup/",
        {
            "email": "x@example.vn",
            "full_name": "X",
            "password": "a-long-unusual-passphrase",
            "kind": "business",
            "company_name": "X Co",
            "tax_code": "0100109107",
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    assert "business tax code" in response.content.decode()
    assert not User.objects.filter(email="x@example.vn").exists()


def test_a_forged_verification_link_verifies_nothing(client, donor_an):
    client.get("/donor/verify/MQ/forged-token/")
    assert DonorProfile.objects.get(user=donor_an).email_verified_at is None


def test_password_reset_sends_a_link_that_sets_a_new_password(client, donor_an):
    client.post("/donor/password-reset/", {"email": "an@example.vn"})
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/donor/password-reset/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "brand-new-passphrase-9", "new_password2": "brand-new-passphrase-9"},
    )
    donor_an.refresh_from_db()
    assert donor_an.check_password("brand-new-passphrase-9")


def test_the_dashboard_lists_only_the_donors_own_gifts(client, donor_an, donor_binh):
    mine = donation_create(donor=donor_an, method=Method.BANK, amount_vnd=100_000)[0]
    theirs = donation_create(donor=donor_binh, method=Method.BANK, amount_vnd=200_000)[0]
    client.force_login(donor_an)
    body = client.get("/donor/").content.decode()
    assert mine.reference in body
    assert theirs.reference not in body


def test_donor_a_cannot_open_donor_bs_payment_page_or_receipt(client, donor_an, donor_binh):
    theirs = donation_create(donor=donor_binh, method=Method.BANK, amount_vnd=200_000)[0]
    client.force_login(donor_an)
    assert client.get(f"/donate/{theirs.public_id}/pay/").status_code == 404
    assert client.get(f"/donate/{theirs.public_id}/receipt.pdf").status_code == 404
