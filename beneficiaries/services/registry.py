"""Intake: registering households and their members by hand (staff form and API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.translation import gettext as _

from config.exceptions import ApplicationError, ConflictError
from donors.models import Role, User
from donors.scopes import user_may_act_on_locality

from ..identifiers import personal_id_errors
from ..localities import ascii_fold
from ..models import Household, Level, Locality, LocalityFreeze, Member, MemberStatus, MemberTransition, Scheme

# Who may register people: the commune's officers, and reviewers of the area.
INTAKE_ROLES = {Role.COMMUNE_OFFICER, Role.FRONT_REVIEWER, Role.ADMIN}


@dataclass
class MemberInput:
    full_name: str
    date_of_birth: date
    sex: str
    personal_id: str
    relation: str
    si_code: str = ""
    ethnicity: str = ""
    is_student: bool = False
    card_group: str = ""
    card_valid_until: date | None = None


def locality_is_frozen(locality: Locality) -> bool:
    ids = [locality.pk] + ([locality.province_id] if locality.province_id else [])
    return LocalityFreeze.objects.filter(locality_id__in=ids, unfrozen_at__isnull=True).exists()


def ensure_may_change(*, user: User, locality: Locality, roles=INTAKE_ROLES) -> None:
    """Scope and freeze checks shared by every write. Out of scope is reported as not found."""
    if not user_may_act_on_locality(user, locality, roles=roles):
        raise Http404(_("Not found."))
    if locality_is_frozen(locality):
        raise ConflictError(
            _("The list of %(locality)s is frozen; a reviewer must unfreeze it first.") % {"locality": locality.name},
            code="frozen",
        )


def member_validate(data: MemberInput) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not data.full_name.strip():
        errors["full_name"] = _("The full name is required.")
    if data.date_of_birth and data.date_of_birth > date.today():
        errors["date_of_birth"] = _("The date of birth is in the future.")
    if data.si_code and not (len(data.si_code) == 10 and data.si_code.isdigit()):
        errors["si_code"] = _("The social insurance code must be 10 digits.")
    errors.update(personal_id_errors(data.personal_id, date_of_birth=data.date_of_birth, sex=data.sex))
    return errors


def member_flag_near_duplicates(*, member: Member) -> int:
    """Flag (never merge) members with the same ascii name, date of birth and commune."""
    same = Member.objects.filter(
        name_ascii=member.name_ascii, date_of_birth=member.date_of_birth, locality_id=member.locality_id
    )
    if same.count() > 1:
        return same.update(is_possible_duplicate=True)
    return 0


def _member_build(*, household: Household, data: MemberInput, user: User) -> Member:
    return Member(
        household=household,
        locality_id=household.locality_id,
        full_name=" ".join(data.full_name.split()),
        name_ascii=ascii_fold(data.full_name),
        date_of_birth=data.date_of_birth,
        sex=data.sex,
        personal_id=data.personal_id,
        si_code=data.si_code,
        ethnicity=data.ethnicity,
        relation=data.relation,
        is_student=data.is_student,
        card_group=data.card_group,
        card_valid_until=data.card_valid_until,
        status=MemberStatus.DRAFT,
        submitted_by=None,
    )


@transaction.atomic
def member_add(*, user: User, household: Household, data: MemberInput) -> Member:
    """Add one member in draft. Not idempotent by design: a second call with the same
    personal ID fails on the unique constraint with a clear message."""
    ensure_may_change(user=user, locality=household.locality)
    errors = member_validate(data)
    if errors:
        raise ApplicationError(_("The member's data is not valid."), extra={"fields": errors})
    member = _member_build(household=household, data=data, user=user)
    try:
        with transaction.atomic():
            member.save()
    except IntegrityError as exc:
        raise ConflictError(
            _("A person with this personal ID is already registered."),
            extra={"fields": {"personal_id": _("Already registered.")}},
            code="duplicate_personal_id",
        ) from exc
    MemberTransition.objects.create(member=member, actor=user, from_status="", to_status=MemberStatus.DRAFT)
    member_flag_near_duplicates(member=member)
    return member


@transaction.atomic
def household_create(
    *,
    user: User,
    locality: Locality,
    external_ref: str,
    address: str = "",
    phone: str = "",
    poverty_class: str = "none",
    certificate_number: str = "",
    certificate_year: int | None = None,
    is_poor_commune: bool = False,
    is_ethnic_minority: bool = False,
    is_island_commune: bool = False,
    members: list[MemberInput] = (),
) -> Household:
    """Register a household with its members (all in draft), all or nothing."""
    if locality.scheme != Scheme.CURRENT or locality.level != Level.COMMUNE:
        raise ApplicationError(
            _("A household belongs to a commune of the 2025 scheme."), extra={"fields": {"locality": ""}}
        )
    ensure_may_change(user=user, locality=locality)
    if Household.objects.filter(locality=locality, external_ref=external_ref).exists():
        raise ConflictError(
            _("This commune already has a household with that number."),
            extra={"fields": {"external_ref": _("Already used.")}},
        )
    all_errors = {}
    for i, data in enumerate(members):
        errors = member_validate(data)
        if errors:
            all_errors[f"members[{i}]"] = errors
    if all_errors:
        raise ApplicationError(_("Some members' data is not valid."), extra={"fields": all_errors})
    household = Household.objects.create(
        locality=locality,
        external_ref=external_ref,
        address=address,
        phone=phone,
        poverty_class=poverty_class,
        certificate_number=certificate_number,
        certificate_year=certificate_year,
        is_poor_commune=is_poor_commune,
        is_ethnic_minority=is_ethnic_minority,
        is_island_commune=is_island_commune,
        created_by=user,
    )
    for data in members:
        member_add(user=user, household=household, data=data)
    return household
