"""The access-control matrix, as data: every URL name × the ten personas → allowed (Y) or
denied (N). test_access_matrix.py walks Django's resolver and fails when a route has no row
here, or a row names a route that no longer exists.

Allowed means the request got past authentication and authorisation: 2xx, a redirect that is
not to a login page, or a domain answer about the request itself (400/409 — e.g. "this gift is
paid by bank transfer"). Denied means 401, 403, 404 (out-of-scope objects are hidden) or a
redirect to a login page. A 5xx fails the cell whatever the expectation.

Columns: an = anonymous, dA / dB = donors A and B, bz = business donor (company account),
oX = officer of commune X, rX / rY = Front reviewers of provinces X / Y, ag = agency viewer of
province X, fi = finance, ad = administrator (superuser). Objects: the household and member
live in commune X; the gift is donor A's; the batch, card and import job belong to commune X
(the import was uploaded by oX).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .world import ROLES, World


@dataclass
class Row:
    id: str
    name: str
    method: str
    expect: str
    kwargs: Callable[[World], dict] | None = None
    data: Callable[[World, str], dict] | None = None
    body: str = "form"  # form | json | multipart
    pii: bool = False  # an unmasked view of the commune-X household: staff of X see PII, it is logged

    def allowed(self) -> dict[str, bool]:
        cells = self.expect.split()
        assert len(cells) == len(ROLES), f"{self.id}: {len(cells)} cells for {len(ROLES)} roles"
        assert set(cells) <= {"Y", "N"}, self.id
        return {role: cell == "Y" for role, cell in zip(ROLES, cells, strict=True)}


def _hh(w):
    return {"pk": w.household.pk}


def _member(w):
    return {"pk": w.member.pk}


def _gift(w):
    return {"public_id": w.gift.public_id}


def _job(w):
    return {"pk": w.import_job.pk}


def _card(w):
    return {"card_id": w.card.pk}


def _batch(w):
    return {"batch_id": w.batch.pk}


def _uid_token(w):
    user = w.users["donor_a"]
    return {"uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": default_token_generator.make_token(user)}


def _csv_file(name="list.csv", content=b"ho_ten,ngay_sinh\n"):
    f = io.BytesIO(content)
    f.name = name
    return f


def _household_payload(w, role):
    # Unique per persona, so a denied persona's request is judged on scope, not on a duplicate.
    n = ROLES.index(role)
    return {
        "locality": w.commune_x.pk,
        "external_ref": f"MATRIX-{n}",
        "members": [
            {
                "full_name": "Lê Văn Ma Trận",
                "date_of_birth": "1990-01-01",
                "sex": "male",
                "personal_id": f"0420900000{n:02d}",
                "relation": "head",
            }
        ],
    }


#   id (route name [variant])            expect: an dA dB bz oX rX rY ag fi ad
MATRIX: list[Row] = [
    # --- Public pages and account plumbing -----------------------------------------------------
    Row("home", "home", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    Row("healthz", "healthz", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    Row("set_language", "set_language", "POST", "Y Y Y Y Y Y Y Y Y Y", data=lambda w, r: {"language": "en"}),
    Row("login", "login", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    Row("logout", "logout", "POST", "Y Y Y Y Y Y Y Y Y Y"),
    Row("account-me", "account-me", "GET", "N Y Y Y Y Y Y Y Y Y"),
    Row("locality-list", "locality-list", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    Row("enrollment-campaign", "enrollment-campaign", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    Row("admin/*", "admin/*", "GET", "N N N N N N N N N Y"),
    Row("security-lockouts", "security-lockouts", "GET", "N N N N N N N N N Y"),
    # --- Donor accounts -------------------------------------------------------------------------
    Row("donor-signup", "donor-signup", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    Row("donor-verify-email", "donor-verify-email", "GET", "Y Y Y Y Y Y Y Y Y Y", kwargs=_uid_token),
    Row("donor-dashboard", "donor-dashboard", "GET", "N Y Y Y Y Y Y Y Y Y"),
    Row("donor-profile", "donor-profile", "GET", "N Y Y Y Y Y Y Y Y Y"),
    Row("password_reset", "password_reset", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    Row("password_reset_done", "password_reset_done", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    Row("password_reset_confirm", "password_reset_confirm", "GET", "Y Y Y Y Y Y Y Y Y Y", kwargs=_uid_token),
    Row("password_reset_complete", "password_reset_complete", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    # --- Giving (any signed-in person may give; a gift's pages belong to its donor and finance)
    Row("donate", "donate", "GET", "N Y Y Y Y Y Y Y Y Y"),
    Row("donate-pay", "donate-pay", "GET", "N Y N N N N N N Y Y", kwargs=_gift),
    Row("donate-thanks", "donate-thanks", "GET", "N Y N N N N N N Y Y", kwargs=_gift),
    Row("donate-receipt", "donate-receipt", "GET", "N Y N N N N N N Y Y", kwargs=_gift),
    Row("donate-status", "donate-status", "GET", "N Y N N N N N N Y Y", kwargs=_gift),
    # The sponsor page's commune list: aggregates only (people waiting), so public.
    Row(
        "donate-communes",
        "donate-communes",
        "GET",
        "Y Y Y Y Y Y Y Y Y Y",
        kwargs=lambda w: {"province_id": w.province_x.pk},
    ),
    # The household picker (size, class, share; no personal data): for signed-in donors.
    Row(
        "donate-households",
        "donate-households",
        "GET",
        "N Y Y Y Y Y Y Y Y Y",
        kwargs=lambda w: {"commune_id": w.commune_x.pk},
    ),
    Row("enrollment-gift-trace", "enrollment-gift-trace", "GET", "N Y N N N N N N Y Y", kwargs=_gift),
    Row("stripe-webhook", "stripe-webhook", "POST", "Y Y Y Y Y Y Y Y Y Y"),  # signature decides: 400
    # --- Registry pages (staff; objects outside the scope are 404) ------------------------------
    Row("registry-queue", "registry-queue", "GET", "N N N N Y Y Y Y Y Y"),
    Row("registry-household-new", "registry-household-new", "GET", "N N N N Y Y Y Y Y Y"),
    Row("registry-household", "registry-household", "GET", "N N N N Y Y N Y Y Y", kwargs=_hh, pii=True),
    Row("registry-member", "registry-member", "GET", "N N N N Y Y N Y Y Y", kwargs=_member, pii=True),
    Row(
        "registry-member-action approve",
        "registry-member-action",
        "POST",
        "N N N N N Y N N N Y",
        kwargs=lambda w: {"pk": w.member.pk, "action": "approve"},
    ),
    Row(
        "registry-member-action return",
        "registry-member-action",
        "POST",
        "N N N N N Y N N N Y",
        kwargs=lambda w: {"pk": w.member.pk, "action": "return"},
        data=lambda w, r: {"reason": "matrix"},
    ),
    Row("registry-imports", "registry-imports", "GET", "N N N N Y Y Y Y Y Y"),
    Row("registry-import", "registry-import", "GET", "N N N N Y N N N N Y", kwargs=_job),
    Row("registry-import-errors", "registry-import-errors", "GET", "N N N N Y N N N N Y", kwargs=_job),
    # --- Finance, matching and enrollment pages ---------------------------------------------------
    Row("finance-home", "finance-home", "GET", "N N N N N N N N Y Y"),
    Row(
        "finance-match-line",
        "finance-match-line",
        "POST",
        "N N N N N N N N Y Y",
        kwargs=lambda w: {"line_id": w.bank_line.pk},
        data=lambda w, r: {"reference": w.gift.reference},
    ),
    Row("finance-refund", "finance-refund", "POST", "N N N N N N N N Y Y", kwargs=_gift),
    Row("matching-runs", "matching-runs", "GET", "N N N N N N N N Y Y"),
    Row("matching-flagged", "matching-flagged", "GET", "N N N N N N N N Y Y"),
    # Any signed-in person sees their own match offers (none, unless a business made one).
    Row("matching-my-offers", "matching-my-offers", "GET", "N Y Y Y Y Y Y Y Y Y"),
    # Settling an offer's pledges: the offer's business only (anyone else's is a 404).
    Row(
        "matching-offer-settle",
        "matching-offer-settle",
        "POST",
        "N N N Y N N N N N N",
        kwargs=lambda w: {"offer_id": w.offer.pk},
        data=lambda w, r: {"method": "bank", "amount_vnd": "100000", "idempotency_key": f"matrix-{r}"},
    ),
    # A refund offer for unmatched money is its donor's alone (another donor's token is a 404).
    Row(
        "matching-unmatched",
        "matching-unmatched",
        "GET",
        "N Y N N N N N N N N",
        kwargs=lambda w: {"token": w.expiry.token},
    ),
    Row(
        "matching-card-gifts",
        "matching-card-gifts",
        "GET",
        "N N N N N N N N Y Y",
        kwargs=lambda w: {"card_id": w.card.pk},
    ),
    Row("enrollment-dashboard", "enrollment-dashboard", "GET", "N N N N N N N Y Y Y"),
    Row("enrollment-batches", "enrollment-batches", "GET", "N N N N Y N N N Y Y"),
    Row(
        "enrollment-batch-action submit",
        "enrollment-batch-action",
        "POST",
        "N N N N Y N N N Y Y",
        kwargs=lambda w: {"batch_id": w.batch.pk, "action": "submit"},
    ),
    Row(
        "enrollment-batch-export csv",
        "enrollment-batch-export",
        "GET",
        "N N N N Y N N N Y Y",
        kwargs=lambda w: {"batch_id": w.batch.pk, "fmt": "csv"},
    ),
    Row(
        "enrollment-batch-export xlsx",
        "enrollment-batch-export",
        "GET",
        "N N N N Y N N N Y Y",
        kwargs=lambda w: {"batch_id": w.batch.pk, "fmt": "xlsx"},
    ),
    Row(
        "enrollment-cardlist-upload",
        "enrollment-cardlist-upload",
        "POST",
        "N N N N N N N N Y Y",
        data=lambda w, r: {"file": _csv_file("D10a.csv")},
        body="multipart",
    ),
    Row("enrollment-demo-cardlist", "enrollment-demo-cardlist", "GET", "N N N N N N N N Y Y"),
    # --- API: accounts, localities, schema --------------------------------------------------------
    Row("api-schema", "api-schema", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    Row("api-me", "api-me", "GET", "N Y Y Y Y Y Y Y Y Y"),
    Row("api-locality-search", "api-locality-search", "GET", "Y Y Y Y Y Y Y Y Y Y"),
    # --- API: registry (staff only; out-of-scope objects are 404) ----------------------------------
    Row("api-registry-members", "api-registry-members", "GET", "N N N N Y Y Y Y Y Y"),
    Row(
        "api-registry-bulk-approve",
        "api-registry-bulk-approve",
        "POST",
        "N N N N N Y Y N N Y",
        data=lambda w, r: {"ids": [w.member.pk]},
        body="json",
    ),
    Row("api-registry-member", "api-registry-member", "GET", "N N N N Y Y N Y Y Y", kwargs=_member, pii=True),
    Row("api-registry-member-price", "api-registry-member-price", "GET", "N N N N Y Y N Y Y Y", kwargs=_member),
    Row("api-registry-member-submit", "api-registry-member-submit", "POST", "N N N N Y Y N N N Y", kwargs=_member),
    Row("api-registry-member-approve", "api-registry-member-approve", "POST", "N N N N N Y N N N Y", kwargs=_member),
    Row(
        "api-registry-member-reject",
        "api-registry-member-reject",
        "POST",
        "N N N N N Y N N N Y",
        kwargs=_member,
        data=lambda w, r: {"reason": "matrix"},
        body="json",
    ),
    Row(
        "api-registry-member-return",
        "api-registry-member-return",
        "POST",
        "N N N N N Y N N N Y",
        kwargs=_member,
        data=lambda w, r: {"reason": "matrix"},
        body="json",
    ),
    Row(
        "api-registry-member-suspend",
        "api-registry-member-suspend",
        "POST",
        "N N N N N Y N N N Y",
        kwargs=_member,
        data=lambda w, r: {"reason": "matrix"},
        body="json",
    ),
    Row(
        "api-registry-household-create",
        "api-registry-household-create",
        "POST",
        "N N N N Y Y N N N Y",
        data=_household_payload,
        body="json",
    ),
    Row("api-registry-household", "api-registry-household", "GET", "N N N N Y Y N Y Y Y", kwargs=_hh, pii=True),
    Row(
        "api-registry-freeze",
        "api-registry-freeze",
        "POST",
        "N N N N N Y N N N Y",
        kwargs=lambda w: {"pk": w.commune_x.pk},
        data=lambda w, r: {"reason": "matrix"},
        body="json",
    ),
    Row(
        "api-registry-unfreeze",
        "api-registry-unfreeze",
        "POST",
        "N N N N N Y N N N Y",
        kwargs=lambda w: {"pk": w.commune_x.pk},
    ),
    Row(
        "api-registry-import-create",
        "api-registry-import-create",
        "POST",
        "N N N N Y Y Y N N Y",
        data=lambda w, r: {"file": _csv_file()},
        body="multipart",
    ),
    Row("api-registry-import", "api-registry-import", "GET", "N N N N Y N N N N Y", kwargs=_job),
    Row("api-registry-import-errors", "api-registry-import-errors", "GET", "N N N N Y N N N N Y", kwargs=_job),
    # --- API: giving ---------------------------------------------------------------------------
    Row("api-donation-list", "api-donation-list", "GET", "N Y Y Y Y Y Y Y Y Y"),
    Row(
        "api-donation-create",
        "api-donation-create",
        "POST",
        "N Y Y Y Y Y Y Y Y Y",
        data=lambda w, r: {"method": "bank", "amount_vnd": 100_000},
        body="json",
    ),
    Row("api-donation-detail", "api-donation-detail", "GET", "N Y N N N N N N Y Y", kwargs=_gift),
    Row("api-card-setup", "api-card-setup", "POST", "N Y N N N N N N Y Y", kwargs=_gift),  # bank gift: 400
    Row(
        "api-card-pay",
        "api-card-pay",
        "POST",
        "N Y N N N N N N Y Y",
        kwargs=_gift,
        data=lambda w, r: {"payment_method": "pm_card_visa"},
        body="json",
    ),
    Row("api-refund-create", "api-refund-create", "POST", "N N N N N N N N Y Y", kwargs=_gift, body="json"),
    Row("api-matching-my-cards", "api-matching-my-cards", "GET", "N Y Y Y Y Y Y Y Y Y"),
    # --- API: finance, matching, enrollment --------------------------------------------------------
    Row("api-ledger", "api-ledger", "GET", "N N N N N N N N Y Y"),
    Row(
        "api-statement-upload",
        "api-statement-upload",
        "POST",
        "N N N N N N N N Y Y",
        data=lambda w, r: {"file": _csv_file("statement.csv", b"")},
        body="multipart",
    ),
    Row("api-bank-lines", "api-bank-lines", "GET", "N N N N N N N N Y Y"),
    Row(
        "api-bank-line-match",
        "api-bank-line-match",
        "POST",
        "N N N N N N N N Y Y",
        kwargs=lambda w: {"line_id": w.bank_line.pk},
        data=lambda w, r: {"reference": w.gift.reference},
        body="json",
    ),
    Row("api-matching-runs", "api-matching-runs", "GET", "N N N N N N N N Y Y"),
    # Holding a need is for the pledge's own donor; anyone else's request finds no such pledge.
    Row(
        "api-matching-hold-create",
        "api-matching-hold-create",
        "POST",
        "N Y N N N N N N N N",
        data=lambda w, r: {"donation": str(w.gift.public_id), "locality_id": w.commune_x.pk},
        body="json",
    ),
    Row(
        "api-card-allocations",
        "api-card-allocations",
        "GET",
        "N N N N N N N N Y Y",
        kwargs=lambda w: {"card_id": w.card.pk},
    ),
    Row("api-enrollment-dashboard", "api-enrollment-dashboard", "GET", "N N N N N N N Y Y Y"),
]


def fresh_key() -> str:
    return uuid.uuid4().hex
