"""Reads of the registry, already scoped to what the acting user may see.

Another user's object is a 404 (`member_get` raises Http404), never a 403.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _

from donors.models import User
from donors.scopes import locality_filter, user_may_act_on_locality

from .models import Household, ImportJob, Member, MemberStatus, MemberTransition, PersonalDataView

FILTER_FIELDS = ("locality", "province", "status", "poverty_class", "is_possible_duplicate", "is_student")


def member_list(*, user: User, filters: dict | None = None) -> QuerySet[Member]:
    filters = filters or {}
    qs = Member.objects.filter(locality_filter(user, "locality")).select_related("household", "locality")
    if filters.get("locality"):
        qs = qs.filter(locality_id=filters["locality"])
    if filters.get("province"):
        qs = qs.filter(locality__province_id=filters["province"])
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("poverty_class"):
        qs = qs.filter(household__poverty_class=filters["poverty_class"])
    if filters.get("is_possible_duplicate") is not None and filters.get("is_possible_duplicate") != "":
        qs = qs.filter(is_possible_duplicate=filters["is_possible_duplicate"])
    for flag in ("is_poor_commune", "is_ethnic_minority", "is_island_commune"):
        if filters.get(flag):
            qs = qs.filter(**{f"household__{flag}": True})
    if filters.get("q"):
        from .localities import ascii_fold

        qs = qs.filter(name_ascii__contains=ascii_fold(filters["q"]))
    return qs.order_by("locality_id", "household_id", "id")


def member_get(*, user: User, pk: int) -> Member:
    return get_object_or_404(member_list(user=user), pk=pk)


def household_list(*, user: User) -> QuerySet[Household]:
    return Household.objects.filter(locality_filter(user, "locality")).select_related("locality").order_by("id")


def household_get(*, user: User, pk: int) -> Household:
    return get_object_or_404(household_list(user=user), pk=pk)


def member_history(*, member: Member) -> list[MemberTransition]:
    """Every status change, oldest first. An imported member's first entry (∅ → submitted by
    the import's officer, "imported from <file>, job N") is derived from the member row: the
    import writes no history row per member (a million more rows and index entries per
    province list). Every later transition is a stored row."""
    history = list(member.transitions.select_related("actor").order_by("at", "id"))
    if member.import_job_id is not None:
        job = ImportJob.objects.filter(pk=member.import_job_id).only("original_name").first()
        reason = _("Imported from %(file)s, job %(job)s") % {
            "file": job.original_name if job else "?",
            "job": member.import_job_id,
        }
        history.insert(
            0,
            MemberTransition(
                member=member,
                actor=member.submitted_by,
                at=member.created_at,
                from_status="",
                to_status=MemberStatus.SUBMITTED,
                reason=reason,
            ),
        )
    return history


def may_see_personal_data(*, user: User, household: Household) -> bool:
    """Unmasked only to staff whose scope covers the household's locality."""
    return (
        user.is_scoped_staff
        and user_may_act_on_locality(user, household.locality)
        or (user.is_superuser and user.is_active)
    )


def personal_data_view_log(*, user: User, household: Household, member: Member | None = None, channel: str) -> None:
    PersonalDataView.objects.create(viewer=user, household=household, member=member, channel=channel)


def mask(value: str, keep: int = 3) -> str:
    value = str(value or "")
    if not value:
        return ""
    return "•" * max(0, len(value) - keep) + value[-keep:] if len(value) > keep else "•" * len(value)


def import_job_list(*, user: User) -> QuerySet[ImportJob]:
    if user.is_superuser:
        return ImportJob.objects.all()
    return ImportJob.objects.filter(created_by=user)


def import_job_get(*, user: User, pk: int) -> ImportJob:
    return get_object_or_404(import_job_list(user=user), pk=pk)
