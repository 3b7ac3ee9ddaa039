"""Staff pages of the registry: review queue, household and member pages, imports.

Views parse the request, call one service or selector, and render. Objects outside the
user's scope are 404s (the selectors are scoped). Personal data is unmasked only for staff
whose scope covers the locality, and each unmasked page view is logged.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from config.exceptions import ApplicationError

from .models import ImportStatus, Locality, MemberStatus, PovertyClass, Product
from .pricing import price_household
from .selectors import (
    household_get,
    import_job_get,
    import_job_list,
    may_see_personal_data,
    member_get,
    member_history,
    member_list,
    personal_data_view_log,
)
from .services import review
from .services.imports import import_errors_csv, import_job_create
from .tasks import import_job_run


def staff_required(view):
    @login_required
    def wrapped(request, *args, **kwargs):
        if not (request.user.is_scoped_staff or request.user.is_superuser or request.user.role in ("finance", "admin")):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _queue_filters(request) -> dict:
    get = request.GET
    return {
        "locality": get.get("locality") or None,
        "status": get.get("status") if get.get("status") in MemberStatus.values else "",
        "poverty_class": get.get("poverty_class") if get.get("poverty_class") in PovertyClass.values else "",
        "is_possible_duplicate": True if get.get("duplicates") == "1" else None,
        "is_poor_commune": get.get("is_poor_commune") == "1",
        "is_ethnic_minority": get.get("is_ethnic_minority") == "1",
        "is_island_commune": get.get("is_island_commune") == "1",
        "q": get.get("q", "").strip(),
    }


@staff_required
def review_queue(request):
    """The filtered list of members a reviewer decides on, with bulk approve."""
    filters = _queue_filters(request)
    if filters["locality"] and not str(filters["locality"]).isdigit():
        filters["locality"] = None
    qs = member_list(user=request.user, filters=filters)
    if request.method == "POST":
        ids = [int(i) for i in request.POST.getlist("member") if i.isdigit()]
        if request.POST.get("all_filtered") == "1":
            result = review.members_bulk_approve(user=request.user, members=qs)
        else:
            result = review.members_bulk_approve(user=request.user, members=list(qs.filter(pk__in=ids)))
        messages.success(
            request,
            _("%(approved)s approved, %(skipped)s skipped (not decidable by you).") % result,
        )
        return redirect(request.get_full_path())
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    communes = Locality.objects.filter(pk__in=qs.values("locality_id").distinct()[:500]).order_by("name")
    return render(
        request,
        "beneficiaries/review_queue.html",
        {
            "page": page,
            "filters": filters,
            "statuses": MemberStatus.choices,
            "classes": PovertyClass.choices,
            "communes": communes,
            "query": request.GET.urlencode(),
        },
    )


def _price_lines(household):
    today = timezone.localdate()
    result = price_household(household=household, product=Product.HI_HOUSEHOLD, months=12, on_date=today)
    return result


MEMBER_ROWS = 6


@staff_required
def household_new(request):
    """The staff form: a household and up to six members, registered all or nothing (draft)."""
    from donors.scopes import is_nationwide, scope_localities

    from .forms import HouseholdForm, MemberForm
    from .services.registry import MemberInput, household_create

    localities = Locality.objects.filter(scheme="2025", level="commune")
    if not is_nationwide(request.user):
        provinces, communes = scope_localities(request.user)
        localities = localities.filter(Q(pk__in=communes) | Q(province_id__in=provinces))
    form = HouseholdForm(request.POST or None, localities=localities.order_by("name"))
    member_forms = [MemberForm(request.POST or None, prefix=f"m{i}") for i in range(MEMBER_ROWS)]
    if request.method == "POST" and form.is_valid() and all(f.is_valid() for f in member_forms):
        data = dict(form.cleaned_data)
        members = [
            MemberInput(
                full_name=f.cleaned_data["full_name"],
                date_of_birth=f.cleaned_data["date_of_birth"],
                sex=f.cleaned_data["sex"],
                personal_id=f.cleaned_data["personal_id"],
                relation=f.cleaned_data["relation"] or "other",
                is_student=f.cleaned_data["is_student"],
            )
            for f in member_forms
            if not f.is_blank()
        ]
        try:
            household = household_create(user=request.user, members=members, **data)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            for key, errors in exc.extra.get("fields", {}).items():
                if isinstance(errors, dict):
                    for field, reason in errors.items():
                        messages.error(request, f"{key} · {field}: {reason}")
        else:
            messages.success(request, _("Household registered."))
            return redirect("registry-household", pk=household.pk)
    return render(request, "beneficiaries/household_new.html", {"form": form, "member_forms": member_forms})


@staff_required
def household_detail(request, pk: int):
    household = household_get(user=request.user, pk=pk)
    unmasked = may_see_personal_data(user=request.user, household=household)
    if unmasked:
        personal_data_view_log(user=request.user, household=household, channel="page")
    return render(
        request,
        "beneficiaries/household_detail.html",
        {"household": household, "unmasked": unmasked, "price": _price_lines(household)},
    )


@staff_required
def member_detail(request, pk: int):
    member = member_get(user=request.user, pk=pk)
    household = member.household
    unmasked = may_see_personal_data(user=request.user, household=household)
    if unmasked:
        personal_data_view_log(user=request.user, household=household, member=member, channel="page")
    prices = _price_lines(household)
    price = next((p for m, p in prices.lines if m.pk == member.pk), None)
    return render(
        request,
        "beneficiaries/member_detail.html",
        {
            "member": member,
            "household": household,
            "unmasked": unmasked,
            "history": member_history(member=member),
            "price": price,
        },
    )


ACTIONS = {
    "submit": lambda user, member, reason: review.member_submit(user=user, member=member),
    "approve": lambda user, member, reason: review.member_approve(user=user, member=member),
    "reject": lambda user, member, reason: review.member_reject(user=user, member=member, reason=reason),
    "return": lambda user, member, reason: review.member_return(user=user, member=member, reason=reason),
    "suspend": lambda user, member, reason: review.member_suspend(user=user, member=member, reason=reason),
}


@staff_required
@require_POST
def member_action(request, pk: int, action: str):
    member = member_get(user=request.user, pk=pk)
    if action not in ACTIONS:
        raise PermissionDenied
    try:
        ACTIONS[action](request.user, member, request.POST.get("reason", ""))
        messages.success(request, _("Done."))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("registry-member", pk=member.pk)


@staff_required
def import_list(request):
    if request.method == "POST" and request.FILES.get("file"):
        try:
            job = import_job_create(user=request.user, uploaded=request.FILES["file"])
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("registry-imports")
        import_job_run.delay_on_commit(job.pk)
        return redirect("registry-import", pk=job.pk)
    jobs = import_job_list(user=request.user)[:20]
    from .services.imports import COLUMNS, REQUIRED

    columns = [(f, headers[0], f in REQUIRED) for f, headers in COLUMNS.items()]
    return render(request, "beneficiaries/import_list.html", {"jobs": jobs, "columns": columns})


@staff_required
def import_detail(request, pk: int):
    job = import_job_get(user=request.user, pk=pk)
    running = job.status in (ImportStatus.PENDING, ImportStatus.RUNNING)
    errors = job.row_errors.all()[:200]
    return render(request, "beneficiaries/import_detail.html", {"job": job, "running": running, "errors": errors})


@staff_required
def import_errors(request, pk: int):
    job = import_job_get(user=request.user, pk=pk)
    response = HttpResponse(import_errors_csv(job=job), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    return response
