"""Pages: agency dashboard (+ CSV/XLSX), batches and card-list import (staff), public campaign
page (no login, aggregates only), donor traceability per gift."""

from __future__ import annotations

from datetime import date

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from beneficiaries.models import Level, Locality, Scheme
from config.exceptions import ApplicationError
from donors.models import Role
from donors.scopes import is_nationwide, locality_filter, user_may_act_on_locality

from ..card_models import Card, CardStatus
from ..models import Donation
from . import batches as batch_services
from .cardlist import cardlist_import
from .exports import batch_export, to_csv, to_xlsx
from .models import AgencyBatch, TargetType
from .selectors import dashboard_rows, latest_target_year, public_rows

DASHBOARD_ROLES = {Role.AGENCY_VIEWER, Role.FINANCE, Role.ADMIN}
BATCH_ROLES = {Role.COMMUNE_OFFICER, Role.FINANCE, Role.ADMIN}


def _may_see_dashboard(user) -> bool:
    return user.is_authenticated and (user.is_superuser or user.role in DASHBOARD_ROLES)


def default_year() -> int:
    """The latest year that has targets, not after this one: the dashboard opens on figures,
    not on an empty future year (the demo's targets are Hà Nội's 2022 ones)."""
    this_year = date.today().year
    return latest_target_year(not_after=this_year) or this_year


def dashboard_params(request) -> tuple[int, str, int | None]:
    try:
        year = int(request.GET.get("year") or default_year())
    except ValueError:
        year = default_year()
    type_ = request.GET.get("type") if request.GET.get("type") in TargetType.values else TargetType.HI
    try:
        province = int(request.GET["province"]) if request.GET.get("province") else None
    except ValueError:
        province = None
    return year, type_, province


EXPORT_HEADERS = [
    "Địa bàn",
    "Chỉ tiêu",
    "Đã đạt (đầu kỳ)",
    "Tham gia mới (tài trợ)",
    "Gia hạn",
    "Còn thiếu",
    "% chỉ tiêu",
    "Đã quyên góp (VND)",
    "Đang chờ (VND)",
]


def _export_rows(rows):
    return [
        [
            r["name"],
            r["target"],
            r["baseline"],
            r["new"],
            r["renewals"],
            r["gap"],
            r["percent"],
            r["raised_vnd"],
            r["pending_vnd"],
        ]
        for r in rows
    ]


@login_required
@require_GET
def dashboard(request):
    if not _may_see_dashboard(request.user):
        raise PermissionDenied
    year, type_, province = dashboard_params(request)
    rows = dashboard_rows(request.user, year=year, type=type_, province_id=province)
    fmt = request.GET.get("format")
    if fmt in ("csv", "xlsx"):
        name = f"dashboard_{year}_{type_}{'_' + str(province) if province else ''}.{fmt}"
        if fmt == "csv":
            content, ctype = to_csv(EXPORT_HEADERS, _export_rows(rows)), "text/csv; charset=utf-8"
        else:
            content = to_xlsx(EXPORT_HEADERS, _export_rows(rows), title="Dashboard")
            ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        response = HttpResponse(content, content_type=ctype)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    peak = max([max(r["monthly"]) for r in rows] + [1])
    for r in rows:
        r["bars"] = [(i + 1, v, round(60 * v / peak)) for i, v in enumerate(r["monthly"])]
    province_obj = Locality.objects.filter(pk=province).first() if province else None
    return render(
        request,
        "enrollment/dashboard.html",
        {
            "rows": rows,
            "year": year,
            "type": type_,
            "types": TargetType.choices,
            "province": province_obj,
            "query": request.GET.urlencode(),
        },
    )


@require_GET
def campaign(request):
    """Public progress per province: no personal data, small cells suppressed."""
    year, type_, _province = dashboard_params(request)
    return render(
        request,
        "enrollment/campaign.html",
        {"rows": public_rows(year=year, type=type_), "year": year, "type": type_, "types": TargetType.choices},
    )


def mask_code(code: str) -> str:
    return f"{code[:2]}{'•' * max(len(code) - 5, 0)}{code[-3:]}" if code else ""


@login_required
@require_GET
def gift_trace(request, public_id):
    """A donor's gift → the cards it paid → batch → masked card code → validity → renewal. No
    names, ID numbers or addresses of the people helped."""
    qs = Donation.objects.all() if is_nationwide(request.user) else Donation.objects.filter(donor=request.user)
    gift = get_object_or_404(qs, public_id=public_id)
    from sponsorship.matching.models import Allocation

    items = []
    # The cards the gift pays now: a card rejected by the agency or un-matched gave its money
    # back to the pool (its allocations were released), so it is no longer this gift's.
    for funding in Allocation.objects.filter(donation=gift).select_related("card__locality").order_by("card_id"):
        card = funding.card
        batch_item = card.batch_items.filter(is_live=True).select_related("batch").first()
        renewal = card.renewals.exclude(status__in=[CardStatus.REJECTED, CardStatus.UNMATCHED]).first()
        items.append(
            {
                "amount_vnd": funding.amount_vnd,
                "commune": card.locality.name,
                "product": card.product,
                "status": card.get_status_display(),
                "batch": batch_item.batch if batch_item else None,
                "code": mask_code(card.card_code),
                "valid_from": card.valid_from,
                "valid_to": card.valid_to,
                "renewal": renewal,
            }
        )
    return render(request, "enrollment/gift_trace.html", {"gift": gift, "items": items})


# --- Staff: batches and card lists ----------------------------------------------------------------


class BatchForm(forms.Form):
    commune = forms.ModelChoiceField(
        label=gettext_lazy("Commune"), queryset=Locality.objects.none(), to_field_name="pk"
    )
    product = forms.ChoiceField(
        label=gettext_lazy("Product"),
        choices=[("hi_household", "D03-TS (BHYT)"), ("si_voluntary", "D05-TS (BHXH tự nguyện)")],
    )


class CardListForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("Agency card list (D10a-TS, CSV or XLSX)"))


def _batch_user(request):
    user = request.user
    if not (user.is_authenticated and (user.is_superuser or user.role in BATCH_ROLES)):
        raise PermissionDenied
    return user


def _communes_with_funded(user):
    ids = Card.objects.filter(status=CardStatus.FUNDED).filter(locality_filter(user)).values("locality_id")
    return Locality.objects.filter(pk__in=ids, scheme=Scheme.CURRENT, level=Level.COMMUNE).order_by("name")


@login_required
def batch_list(request):
    user = _batch_user(request)
    form = BatchForm(request.POST or None)
    form.fields["commune"].queryset = _communes_with_funded(user)
    if request.method == "POST" and form.is_valid():
        try:
            batch = batch_services.batch_create(
                locality=form.cleaned_data["commune"],
                product=form.cleaned_data["product"],
                period=date.today().replace(day=1),
                by=user,
            )
            messages.success(request, _("Batch %(ref)s created.") % {"ref": batch.reference})
        except ApplicationError as exc:
            messages.error(request, str(exc))
        return redirect("enrollment-batches")
    batches = AgencyBatch.objects.filter(locality_filter(user)).select_related("locality").order_by("-pk")[:200]
    return render(
        request,
        "enrollment/batches.html",
        {"batches": batches, "form": form, "upload": CardListForm(), "may_import": is_nationwide(user)},
    )


def _own_batch(user, batch_id) -> AgencyBatch:
    batch = get_object_or_404(AgencyBatch.objects.filter(locality_filter(user)), pk=batch_id)
    if not user_may_act_on_locality(user, batch.locality):
        raise PermissionDenied
    return batch


@login_required
@require_POST
def batch_action(request, batch_id, action):
    user = _batch_user(request)
    batch = _own_batch(user, batch_id)
    actions = {
        "submit": batch_services.batch_submit,
        "cancel": batch_services.batch_cancel,
        "paid": batch_services.batch_mark_paid,
    }
    if action not in actions or (action == "paid" and not is_nationwide(user)):
        raise PermissionDenied
    try:
        actions[action](batch_id=batch.pk, by=user)
    except ApplicationError as exc:
        messages.error(request, str(exc))
    return redirect("enrollment-batches")


@login_required
@require_GET
def batch_download(request, batch_id, fmt):
    user = _batch_user(request)
    batch = _own_batch(user, batch_id)
    content, name, ctype = batch_export(batch, "xlsx" if fmt == "xlsx" else "csv")
    response = HttpResponse(content, content_type=ctype)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
@require_POST
def cardlist_upload(request):
    user = _batch_user(request)
    if not is_nationwide(user):
        raise PermissionDenied
    form = CardListForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = cardlist_import(content=upload.read(), file_name=upload.name, by=user)
            messages.success(
                request,
                _(
                    "Card list imported: %(enrolled)d enrolled, %(rejected)d rejected, %(unchanged)d unchanged, "
                    "%(unmatched)d unmatched, %(ambiguous)d ambiguous, %(bad)d bad rows."
                )
                % {k: getattr(job, k) for k in ("enrolled", "rejected", "unchanged", "unmatched", "ambiguous", "bad")},
            )
            for line in job.report[:50]:
                messages.warning(request, f"{line['row']}: {line['outcome']} {line['message']}")
        except ApplicationError as exc:
            messages.error(request, str(exc))
    return redirect("enrollment-batches")


@login_required
@require_GET
def demo_cardlist(request):
    """The demo's agency card list (written by the demo seed), for staff to download and import."""
    user = _batch_user(request)
    if not is_nationwide(user):
        raise PermissionDenied
    from .demo import demo_cardlist_path

    path = demo_cardlist_path()
    if not path.exists():
        raise PermissionDenied
    response = HttpResponse(path.read_bytes(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="D10a-TS_demo.csv"'
    return response
