from datetime import date

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import health_report
from .money import format_vnd


def campaign_progress() -> dict:
    """Public, aggregate-only progress for the home page: per province with a target, how far
    it is and the gap still open; a count under ENROLLMENT_PUBLIC_MIN_CELL is not shown (and
    not subtracted from the gap, which would reveal it)."""
    from django.db.models import Count, Sum

    from .card_models import Card
    from .enrollment.selectors import _Nationwide, dashboard_rows, latest_target_year
    from .models import Donation
    from .services.donations import PAID_STATUSES

    k = settings.ENROLLMENT_PUBLIC_MIN_CELL
    year = latest_target_year(type="hi")
    rows = []
    for r in dashboard_rows(_Nationwide(), year=year, type="hi") if year else []:
        if r["target"] is None:
            continue
        new = r["new"] if r["new"] >= k else 0
        reached = (r["baseline"] or 0) + new
        rows.append(
            {
                "name": r["name"],
                "target": r["target"],
                "new": r["new"] if r["new"] >= k else None,
                "gap": max(r["target"] - reached, 0),
                "percent": round(100 * reached / r["target"], 1) if r["target"] else 0,
            }
        )
    rows.sort(key=lambda r: -r["gap"])
    # A business paying its match pledges is not new money: its matched gifts counted already.
    money = Donation.objects.filter(status__in=PAID_STATUSES, match_settlement__isnull=True).aggregate(
        raised=Sum("amount_received_vnd"), donors=Count("donor", distinct=True)
    )
    return {
        "year": year,
        "rows": rows,
        "raised": money["raised"] or 0,
        "donors": money["donors"] or 0,
        "cards": Card.objects.exclude(status__in=["rejected", "unmatched"]).count(),
        "gap_total": sum(r["gap"] for r in rows),
    }


def public_figures(name: str, compute):
    """Aggregates every visitor sees alike (progress, gaps, typical prices), kept in the shared
    cache for CHUNGTAY_PUBLIC_FIGURES_CACHE_SECONDS: under load they were most of each page's
    time, and a figure a minute old is fine on a public page. 0 turns it off (tests)."""
    seconds = settings.CHUNGTAY_PUBLIC_FIGURES_CACHE_SECONDS
    if not seconds:
        return compute()
    from django.core.cache import cache

    return cache.get_or_set(f"public-figures:{name}:{date.today().isoformat()}", compute, seconds)


@require_GET
def home(request):
    return render(request, "sponsorship/home.html", {"progress": public_figures("progress", campaign_progress)})


@never_cache
@require_GET
def healthz(request):
    """JSON for load balancers and people: 200 when every dependency answers, else 503 naming it."""
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503, json_dumps_params={"indent": 2})


# --- Donations (issue 4) ---------------------------------------------------------------------------

import uuid  # noqa: E402

from django import forms  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib import messages  # noqa: E402
from django.contrib.auth.decorators import login_required  # noqa: E402
from django.http import HttpResponse, HttpResponseForbidden  # noqa: E402
from django.shortcuts import get_object_or_404, redirect  # noqa: E402
from django.utils.translation import gettext_lazy as _  # noqa: E402
from django.views.decorators.http import require_POST  # noqa: E402

from beneficiaries.models import Level, Locality, Scheme  # noqa: E402
from config.exceptions import ApplicationError  # noqa: E402
from donors.scopes import is_nationwide  # noqa: E402

from .models import (  # noqa: E402
    Account,
    Appearance,
    BankStatementLine,
    Discrepancy,
    Donation,
    LedgerAlarm,
    LineStatus,
    Method,
    Product,
    StripeEvent,
)


def _typical_price(*, product: str, months: int, locality=None):
    """What one person's cover costs and who pays what, from the versioned pricing data
    (beneficiaries/pricing.py), for a near-poor household member (the people this campaign
    funds; the state pays the whole card of a poor household)."""
    from datetime import date as _date

    from beneficiaries import pricing
    from beneficiaries.models import Household, MemberStatus, PovertyClass
    from beneficiaries.models import Member as _Member
    from beneficiaries.models import Product as PricingProduct

    place = locality or Locality()
    household = Household(locality=place, poverty_class=PovertyClass.NEAR_POOR)
    member = _Member(household=household, locality=place, status=MemberStatus.APPROVED, personal_id="-")
    kind = PricingProduct.VOLUNTARY_SI if product == Product.SI_VOLUNTARY else PricingProduct.HI_HOUSEHOLD
    try:
        return pricing.price_member(member=member, product=kind, months=months, on_date=_date.today())
    except ApplicationError:
        return None


def _province_gaps() -> dict[int, int]:
    """Gap to this year's (or the latest) health-insurance target per province, for the 'where'
    list. Aggregates only."""
    from .enrollment.selectors import _Nationwide, dashboard_rows, latest_target_year

    year = latest_target_year(type="hi")
    if year is None:
        return {}
    return {
        r["locality_id"]: r["gap"] for r in dashboard_rows(_Nationwide(), year=year, type="hi") if r["gap"] is not None
    }


class ProvinceChoice(forms.ModelChoiceField):
    gaps: dict[int, int] = {}

    def label_from_instance(self, obj):
        gap = self.gaps.get(obj.pk)
        if gap:
            from .money import format_count

            return _("%(name)s · %(gap)s people still uncovered") % {"name": obj.name, "gap": format_count(gap)}
        return obj.name


SI_MONTHS = [(m, m) for m in (1, 3, 6, 12)]


def communes_waiting(province_id: int) -> list[dict]:
    """A province's communes where approved people still wait for a card, most waiting first.
    Counts under ENROLLMENT_PUBLIC_MIN_CELL are not given (nobody should be recognisable)."""
    from django.db.models import Count

    from beneficiaries.models import Member as _Member
    from beneficiaries.models import MemberStatus

    k = settings.ENROLLMENT_PUBLIC_MIN_CELL
    counts = dict(
        _Member.objects.filter(status=MemberStatus.APPROVED, locality__province_id=province_id)
        .exclude(cards__status__in=["funded", "listed", "submitted", "enrolled", "active"])
        .values_list("locality_id")
        .annotate(n=Count("id", distinct=True))
    )
    names = dict(Locality.objects.filter(pk__in=counts).values_list("id", "name"))
    rows = sorted(
        ({"id": i, "name": names[i], "waiting": n} for i, n in counts.items()), key=lambda r: (-r["waiting"], r["name"])
    )
    return [{"id": r["id"], "name": r["name"], "waiting": r["waiting"] if r["waiting"] >= k else None} for r in rows]


HOUSEHOLD_SALT = "donate-household"  # the picker's household tokens (no database id in the page)
PICKER_LIMIT = 20


def households_waiting(commune_id: int) -> list[dict]:
    """The donor's household picker: households of a commune whose approved members still wait
    for a health-insurance card, with what a donor would give for all of them (12 months), their
    size and poverty class. Never a name, personal ID, address or database id (an opaque signed
    token identifies the household for the hold). A commune with fewer waiting people than
    ENROLLMENT_PUBLIC_MIN_CELL shows none: a single household there could be recognised."""
    from datetime import date as _date

    from django.core import signing

    from beneficiaries import pricing
    from beneficiaries.models import Household, MemberStatus, PovertyClass
    from beneficiaries.models import Member as _Member

    from .card_models import LIVE_STATUSES, Card

    covered = Card.objects.filter(status__in=LIVE_STATUSES, product=Product.HI_HOUSEHOLD).values("member_id")
    waiting = list(
        _Member.objects.filter(status=MemberStatus.APPROVED, locality_id=commune_id)
        .exclude(pk__in=covered)
        .order_by("household_id", "id")
    )
    if len(waiting) < settings.ENROLLMENT_PUBLIC_MIN_CELL:
        return []
    by_household: dict[int, list] = {}
    for m in waiting:
        by_household.setdefault(m.household_id, []).append(m)
    households = Household.objects.in_bulk(list(by_household)[: PICKER_LIMIT * 2])
    rows = []
    for hh_id, hh in households.items():
        try:
            price = pricing.price_household(household=hh, months=12, on_date=_date.today(), members=by_household[hh_id])
        except ApplicationError:
            continue
        share = sum(p.donor_share_vnd for _m, p in price.lines if p.eligible)
        if share <= 0:
            continue  # the state pays their whole card: nothing for a donor to do
        rows.append(
            {
                "token": signing.dumps(hh_id, salt=HOUSEHOLD_SALT),
                "size": len(by_household[hh_id]),
                "poverty_class": str(PovertyClass(hh.poverty_class).label),
                "share_vnd": share,
                "_order": (hh.created_at, hh_id),
            }
        )
    rows.sort(key=lambda r: r.pop("_order"))  # waiting longest first
    return rows[:PICKER_LIMIT]


def household_from_token(token: str):
    from django.core import signing

    from beneficiaries.models import Household

    try:
        return Household.objects.select_related("locality").get(pk=signing.loads(token, salt=HOUSEHOLD_SALT))
    except (signing.BadSignature, Household.DoesNotExist, TypeError, ValueError):
        return None


class DonateForm(forms.Form):
    province = ProvinceChoice(
        label=_("Where"),
        queryset=Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.PROVINCE).order_by("name"),
        required=False,
        empty_label=_("Where most needed"),
    )
    commune = forms.ModelChoiceField(
        label=_("Commune (optional)"),
        queryset=Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.COMMUNE),
        required=False,
        empty_label=_("Anywhere in the province"),
    )
    product = forms.ChoiceField(
        label=_("What"),
        choices=Product.choices,
        initial=Product.HI_HOUSEHOLD,
        widget=forms.RadioSelect,
        required=False,  # left out (API-like posts): the gift is for any product
    )
    months = forms.TypedChoiceField(
        label=_("Months of voluntary social insurance"), choices=SI_MONTHS, coerce=int, initial=12, required=False
    )
    cards_count = forms.IntegerField(label=_("How many people"), required=False, min_value=1, max_value=10_000)
    amount_vnd = forms.IntegerField(label=_("…or an amount (VND)"), required=False, min_value=1)
    method = forms.ChoiceField(label=_("How do you pay?"), choices=Method.choices, widget=forms.RadioSelect)
    appearance = forms.ChoiceField(label=_("Appear as"), choices=Appearance.choices, initial=Appearance.NAMED)
    # Optional: one household of the chosen commune (an opaque token from donate-households).
    household = forms.CharField(label=_("A household (optional)"), required=False, widget=forms.Select)
    has_redirect_consent = forms.BooleanField(required=False)
    idempotency_key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["province"].gaps = public_figures("province-gaps", _province_gaps)
        # The commune list is filled in the browser from the chosen province (donate-communes).
        self.fields["commune"].widget.choices = [("", self.fields["commune"].empty_label)]
        # So is the household list, from the chosen commune (donate-households).
        self.fields["household"].widget.choices = [("", _("Any household of the commune"))]
        self.fields["has_redirect_consent"].label = _(
            "If my money is not matched within %(days)s days, it may go where most needed."
        ) % {"days": settings.CHUNGTAY_UNMATCHED_EXPIRY_DAYS}

    def clean(self):
        v = super().clean()
        commune = v.get("commune")
        if commune and (not v.get("province") or commune.province_id != v["province"].pk):
            raise forms.ValidationError(_("Choose a commune of the chosen province."))
        if v.get("cards_count") and v.get("amount_vnd"):
            raise forms.ValidationError(_("Give an amount or a number of people, not both."))
        if not v.get("cards_count") and not v.get("amount_vnd"):
            raise forms.ValidationError(_("Enter a number of people or an amount."))
        v["household_obj"] = None
        if v.get("household"):
            household = household_from_token(v["household"])
            if household is None or not commune or household.locality_id != commune.pk:
                raise forms.ValidationError(_("Choose a household of the chosen commune."))
            if (v.get("product") or Product.HI_HOUSEHOLD) != Product.HI_HOUSEHOLD:
                raise forms.ValidationError(_("A household can be chosen for health-insurance cards only."))
            v["household_obj"] = household
        return v


def _price_table(product: str, months: int, locality=None) -> dict | None:
    price = _typical_price(product=product, months=months, locality=locality)
    if price is None or not price.eligible:
        return None
    return {
        "premium": price.premium_vnd,
        "support": price.state_share_vnd + price.province_share_vnd,
        "share": price.donor_share_vnd,
        "months": months,
    }


def _typical_prices() -> dict:
    prices = {"hi_household": _price_table(Product.HI_HOUSEHOLD, 12)}
    for m, _label in SI_MONTHS:
        prices[f"si_voluntary:{m}"] = _price_table(Product.SI_VOLUNTARY, m)
    return prices


@login_required
def donate(request):
    from .services.donations import donation_create

    if request.method == "POST":
        form = DonateForm(request.POST)
        if form.is_valid():
            v = form.cleaned_data
            months = (v["months"] or 12) if v["product"] == Product.SI_VOLUNTARY else 12
            amount = v["amount_vnd"]
            if v["cards_count"]:
                price = _price_table(v["product"] or Product.HI_HOUSEHOLD, months, v["province"])
                if price is None:
                    form.add_error(None, _("The price is not known today; give an amount instead."))
                else:
                    amount = v["cards_count"] * price["share"]
            household = v["household_obj"]
            if household is not None and not form.errors:
                try:
                    share = _household_share(household)
                except ApplicationError as exc:
                    form.add_error(None, exc.message)
                else:
                    if v["cards_count"]:
                        amount = share  # "the household" is the count: all its waiting members
                    elif amount < share:
                        form.add_error(
                            None,
                            _("This household's cards need %(share)s; give at least that, or choose no household.")
                            % {"share": format_vnd(share)},
                        )
            if not form.errors:
                try:
                    donation, _created = donation_create(
                        donor=request.user,
                        method=v["method"],
                        amount_vnd=amount,
                        locality=v["commune"] or v["province"],
                        product=v["product"],
                        appearance=v["appearance"],
                        idempotency_key=v["idempotency_key"],
                        has_redirect_consent=v["has_redirect_consent"],
                    )
                    if household is not None:
                        from .matching import holds

                        holds.hold_pick_household(donation=donation, household=household, by=request.user)
                except ApplicationError as exc:
                    form.add_error(None, exc.message)
                else:
                    return redirect("donate-pay", public_id=donation.public_id)
    else:
        form = DonateForm(
            initial={
                "idempotency_key": uuid.uuid4().hex,
                "method": Method.CARD,
                "product": Product.HI_HOUSEHOLD,
                "cards_count": 1,
            }
        )
    # The price of one person's cover for each choice, so the page can show the breakdown
    # (and the total) before anyone pays, as the donor changes product, months or count.
    prices = public_figures("typical-prices", _typical_prices)
    return render(
        request,
        "sponsorship/donate.html",
        {
            "form": form,
            "min": settings.DONATION_MIN_VND,
            "max": settings.DONATION_MAX_VND,
            "prices": prices,
            "hi_price": prices["hi_household"],
        },
    )


def _own(request, public_id) -> Donation:
    qs = Donation.objects.all() if is_nationwide(request.user) else Donation.objects.filter(donor=request.user)
    return get_object_or_404(qs, public_id=public_id)


def stripe_js_url() -> str:
    base = settings.STRIPE_API_BASE.rstrip("/")
    return f"{base}/js.stripe.com/v3/" if base else "https://js.stripe.com/v3/"


@login_required
def donate_pay(request, public_id):
    from .services import bank

    donation = _own(request, public_id)
    ctx = {"donation": donation, "stripe_js": stripe_js_url(), "publishable_key": settings.STRIPE_PUBLISHABLE_KEY}
    if donation.method == Method.BANK:
        payload = bank.vietqr_payload(donation)
        ctx.update(
            vietqr_payload=payload,
            vietqr_image=bank.vietqr_svg_data_uri(payload),
            bank_bin=settings.VIETQR_BANK_BIN,
            account_number=settings.VIETQR_ACCOUNT_NUMBER,
            account_name=settings.VIETQR_ACCOUNT_NAME,
        )
    return render(request, "sponsorship/donate_pay.html", ctx)


@login_required
def donate_thanks(request, public_id):
    return render(request, "sponsorship/donate_thanks.html", {"donation": _own(request, public_id)})


@require_GET
def donate_communes(request, province_id):
    """JSON for the sponsor page's commune list (aggregates only)."""
    return JsonResponse({"communes": communes_waiting(province_id)})


@login_required
@require_GET
def donate_households(request, commune_id):
    """JSON for the sponsor page's household picker: size, poverty class and the donor's share
    of each waiting household, never personal data (see households_waiting)."""
    rows = households_waiting(commune_id)
    for r in rows:
        r["share"] = format_vnd(r["share_vnd"])
        r["poverty_class"] = str(r["poverty_class"])
    return JsonResponse({"households": rows})


def _household_share(household) -> int:
    """What a donor gives for all of the household's waiting members (12 months), as the picker
    showed it."""
    from django.core import signing

    for r in households_waiting(household.locality_id):
        if signing.loads(r["token"], salt=HOUSEHOLD_SALT) == household.pk:
            return r["share_vnd"]
    raise ApplicationError(_("This household is no longer waiting; choose another."), code="household_gone")


@never_cache
@login_required
@require_GET
def donate_status(request, public_id):
    """What the thank-you page polls: the gift's status in the reader's language."""
    from .money import format_vnd
    from .services.donations import PAID_STATUSES

    d = _own(request, public_id)
    return JsonResponse(
        {
            "status": d.status,
            "label": str(d.get_status_display()),
            "paid": d.status in PAID_STATUSES,
            "final": d.status in {*PAID_STATUSES, "failed", "canceled"},
            "received": format_vnd(d.amount_received_vnd),
            "message": d.failure_message,
        }
    )


@login_required
def receipt_download(request, public_id):
    from .services import receipts
    from .services.donations import PAID_STATUSES

    donation = _own(request, public_id)
    if donation.status not in PAID_STATUSES:
        return HttpResponseForbidden(_("There is no receipt before the gift is paid."))
    receipt = receipts.issue(donation)
    response = HttpResponse(receipts.receipt_pdf(receipt), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{receipt.number}.pdf"'
    return response


class StatementForm(forms.Form):
    file = forms.FileField(label=_("Bank statement (CSV or XLSX)"))


def _finance_only(request):
    return request.user.is_authenticated and is_nationwide(request.user)


@login_required
def finance_home(request):
    from .services import bank, ledger

    if not _finance_only(request):
        return HttpResponseForbidden()
    form = StatementForm()
    if request.method == "POST":
        form = StatementForm(request.POST, request.FILES)
        if form.is_valid():
            f = form.cleaned_data["file"]
            try:
                st = bank.statement_import(name=f.name, content=f.read(), by=request.user)
            except ApplicationError as exc:
                form.add_error("file", exc.message)
            else:
                messages.success(
                    request,
                    _("%(new)s new lines of %(total)s stored; matching runs now.")
                    % {"new": st.lines_new, "total": st.lines_total},
                )
                return redirect("finance-home")
    from .matching import settlement

    trial = ledger.trial_balance()
    ctx = {
        "match_pledges": settlement.outstanding_by_business(),
        "form": form,
        # (label in the active language, code, signed balance) — finance reads both.
        "trial": [(Account(k).label if k in Account.values else k, k, v) for k, v in trial.items()],
        "trial_sum": sum(trial.values()),
        "funds": sorted(ledger.fund_balances().items()),
        "alarms": LedgerAlarm.objects.filter(resolved_at=None)[:50],
        "discrepancies": Discrepancy.objects.filter(resolved_at=None)[:100],
        "unmatched": BankStatementLine.objects.filter(status=LineStatus.UNMATCHED).order_by("id")[:100],
        "failed_events": StripeEvent.objects.filter(status="failed").order_by("-id")[:50],
        "recent": Donation.objects.select_related("donor").order_by("-created_at")[:50],
    }
    return render(request, "sponsorship/finance.html", ctx)


@login_required
@require_POST
def finance_match_line(request, line_id):
    from .services import bank

    if not _finance_only(request):
        return HttpResponseForbidden()
    line = get_object_or_404(BankStatementLine, pk=line_id)
    try:
        bank.match_line_manually(line=line, reference=request.POST.get("reference", ""), by=request.user)
        messages.success(request, _("Line matched."))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("finance-home")


@login_required
@require_POST
def finance_refund(request, public_id):
    from .services import payments

    if not _finance_only(request):
        return HttpResponseForbidden()
    donation = get_object_or_404(Donation, public_id=public_id)
    raw = request.POST.get("amount_vnd", "").strip()
    try:
        payments.refund_request(donation=donation, amount_vnd=int(raw) if raw else None, by=request.user)
        messages.success(request, _("Refund done."))
    except (ApplicationError, ValueError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    return redirect("finance-home")
