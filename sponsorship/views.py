from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import health_report


@require_GET
def home(request):
    return render(request, "sponsorship/home.html")


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


class DonateForm(forms.Form):
    method = forms.ChoiceField(label=_("How do you give?"), choices=Method.choices, widget=forms.RadioSelect)
    amount_vnd = forms.IntegerField(label=_("Amount (VND)"), required=False, min_value=1)
    cards_count = forms.IntegerField(label=_("…or a number of cards"), required=False, min_value=1, max_value=10_000)
    province = forms.ModelChoiceField(
        label=_("Where"),
        queryset=Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.PROVINCE).order_by("name"),
        required=False,
        empty_label=_("Where most needed"),
    )
    product = forms.ChoiceField(label=_("Product"), choices=[("", _("Any"))] + Product.choices, required=False)
    beneficiary_group = forms.CharField(label=_("Beneficiary group code (optional)"), required=False, max_length=16)
    campaign = forms.CharField(label=_("Campaign (optional)"), required=False, max_length=64)
    appearance = forms.ChoiceField(label=_("Appear as"), choices=Appearance.choices, initial=Appearance.NAMED)
    idempotency_key = forms.CharField(widget=forms.HiddenInput)


@login_required
def donate(request):
    from .services.donations import donation_create

    if request.method == "POST":
        form = DonateForm(request.POST)
        if form.is_valid():
            v = form.cleaned_data
            try:
                donation, _created = donation_create(
                    donor=request.user,
                    method=v["method"],
                    amount_vnd=v["amount_vnd"],
                    cards_count=v["cards_count"],
                    locality=v["province"],
                    product=v["product"],
                    beneficiary_group=v["beneficiary_group"],
                    campaign=v["campaign"],
                    appearance=v["appearance"],
                    idempotency_key=v["idempotency_key"],
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                return redirect("donate-pay", public_id=donation.public_id)
    else:
        form = DonateForm(initial={"idempotency_key": uuid.uuid4().hex, "method": Method.CARD})
    return render(
        request,
        "sponsorship/donate.html",
        {
            "form": form,
            "min": settings.DONATION_MIN_VND,
            "max": settings.DONATION_MAX_VND,
            "card_price": settings.DONATION_CARD_PRICE_VND,
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
    trial = ledger.trial_balance()
    ctx = {
        "form": form,
        "trial": [(k, v) for k, v in trial.items()],
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
