"""The exact price of a card, and who owes it (FACTS §1–3).

Public entry points (a later matching issue calls these):

- `price_member(*, member, product, months, on_date, ...) -> Price`
- `price_household(*, household, product, months, on_date, members=None) -> HouseholdPrice`

All amounts are integer đồng. The figures come from versioned data (PremiumSchedule,
SupportRule, VoluntarySIParameters), never from code: the date picks the rows in force.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from config.exceptions import ApplicationError

from .models import (
    Household,
    Jurisdiction,
    Member,
    MemberStatus,
    PovertyClass,
    PremiumSchedule,
    Product,
    Relation,
    SupportGroup,
    SupportRule,
    VoluntarySIParameters,
)

HI_MONTHS = {3, 6, 12}
HI_STUDENT_MONTHS = {3, 6, 9, 12}
# Statuses that no longer take a card (they do not hold a place on the household ladder).
INACTIVE_STATUSES = {MemberStatus.REJECTED, MemberStatus.SUSPENDED}

REASONS = {
    "poor_household": _("The state budget pays the whole card of a poor household member."),
    "already_covered": _("Already holds a valid card on that date."),
    "state_pays_all": _("The state pays the whole premium for this group."),
    "inactive": _("The member is rejected or suspended."),
}


@dataclass(frozen=True)
class Price:
    product: str
    months: int
    on_date: date
    eligible: bool
    reason: str = ""  # a key of REASONS when not eligible
    group: str = ""  # "GD" for the household ladder, else the SupportGroup that set the state share
    premium_vnd: int = 0
    state_share_vnd: int = 0
    province_share_vnd: int = 0  # province and commune top-ups together
    donor_share_vnd: int = 0
    ladder_position: int | None = None
    schedule_id: int | None = None  # PremiumSchedule (HI) or VoluntarySIParameters (VSI)
    rule_ids: tuple[int, ...] = ()

    @property
    def reason_text(self) -> str:
        return str(REASONS.get(self.reason, self.reason))


@dataclass
class HouseholdPrice:
    household_id: int | None
    product: str
    months: int
    on_date: date
    lines: list[tuple[Member, Price]] = field(default_factory=list)

    @property
    def premium_vnd(self) -> int:
        return sum(p.premium_vnd for _m, p in self.lines if p.eligible)

    @property
    def donor_share_vnd(self) -> int:
        return sum(p.donor_share_vnd for _m, p in self.lines if p.eligible)


def _vnd(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def premium_schedule_on(on_date: date) -> PremiumSchedule:
    schedule = PremiumSchedule.objects.filter(valid_from__lte=on_date).order_by("-valid_from").first()
    if schedule is None:
        raise ApplicationError(str(_("No premium schedule is in force on %(date)s.") % {"date": on_date}))
    return schedule


def vsi_parameters_on(on_date: date) -> VoluntarySIParameters:
    params = VoluntarySIParameters.objects.filter(valid_from__lte=on_date).order_by("-valid_from").first()
    if params is None:
        raise ApplicationError(str(_("No voluntary SI parameters are in force on %(date)s.") % {"date": on_date}))
    return params


def hi_support_groups(member: Member, household: Household) -> list[str]:
    """The state-supported HI groups a member belongs to (empty: household group GD)."""
    groups = []
    if household.poverty_class == PovertyClass.NEAR_POOR:
        groups.append(SupportGroup.NEAR_POOR)
        if household.is_poor_commune:
            groups.append(SupportGroup.NEAR_POOR_POOR_COMMUNE)
    if household.poverty_class == PovertyClass.AVERAGE_FARMING:
        groups.append(SupportGroup.AVERAGE_FARMING)
    if member.is_student:
        groups.append(SupportGroup.STUDENT)
    return groups


def _rules_on(groups: list[str], on_date: date, household: Household) -> list[SupportRule]:
    locality = household.locality
    local = Q(jurisdiction=Jurisdiction.NATIONAL) | Q(
        jurisdiction=Jurisdiction.PROVINCE, locality_id=locality.province_id
    )
    local |= Q(jurisdiction=Jurisdiction.COMMUNE, locality_id=locality.pk)
    return list(
        SupportRule.objects.filter(local, group__in=groups, valid_from__lte=on_date).filter(
            Q(valid_to__isnull=True) | Q(valid_to__gte=on_date)
        )
    )


def _ladder_order(member: Member):
    return (member.relation != Relation.HEAD, member.date_of_birth, member.personal_id)


def _ladder_positions(members: list[Member], household: Household, on_date: date) -> dict[str, int]:
    """personal_id → place on the household ladder, for the members of group GD who take a card."""
    gd = [
        m
        for m in members
        if m.status not in INACTIVE_STATUSES and not m.has_current_card(on_date) and not hi_support_groups(m, household)
    ]
    return {m.personal_id: i for i, m in enumerate(sorted(gd, key=_ladder_order), start=1)}


def _price_hi(*, member, household, months, on_date, ladder_position) -> Price:
    base = {"product": Product.HI_HOUSEHOLD, "months": months, "on_date": on_date}
    allowed = HI_STUDENT_MONTHS if member.is_student else HI_MONTHS
    if months not in allowed:
        raise ApplicationError(
            str(_("A card is bought for %(allowed)s months.") % {"allowed": ", ".join(map(str, sorted(allowed)))}),
            extra={"months": months},
        )
    if member.status in INACTIVE_STATUSES:
        return Price(**base, eligible=False, reason="inactive")
    if household.poverty_class == PovertyClass.POOR:
        return Price(**base, eligible=False, reason="poor_household", group=SupportGroup.POOR)
    if member.has_current_card(on_date):
        return Price(**base, eligible=False, reason="already_covered")
    schedule = premium_schedule_on(on_date)
    monthly = Decimal(schedule.base_salary_vnd) * schedule.hi_rate
    groups = hi_support_groups(member, household)
    if not groups:
        if ladder_position is None:
            raise ApplicationError("A household-group member needs a place on the ladder.")
        premium = _vnd(monthly * schedule.ladder(ladder_position) * months)
        return Price(
            **base,
            eligible=True,
            group="GD",
            premium_vnd=premium,
            donor_share_vnd=premium,
            ladder_position=ladder_position,
            schedule_id=schedule.pk,
        )
    premium = _vnd(monthly * months)
    rules = _rules_on(groups, on_date, household)
    national = [r for r in rules if r.jurisdiction == Jurisdiction.NATIONAL]
    # Where a person fits several groups the highest national share applies (FACTS §1).
    best = max(national, key=lambda r: r.share, default=None)
    state = _vnd(premium * best.share) if best else 0
    used = [best] if best else []
    local = 0
    for jurisdiction in (Jurisdiction.PROVINCE, Jurisdiction.COMMUNE):
        top = max((r for r in rules if r.jurisdiction == jurisdiction), key=lambda r: r.share, default=None)
        if top is not None:
            local += _vnd(premium * top.share)
            used.append(top)
    local = min(local, premium - state)
    donor = premium - state - local
    group = best.group if best else groups[0]
    price = Price(
        **base,
        eligible=donor > 0,
        reason="" if donor > 0 else "state_pays_all",
        group=group,
        premium_vnd=premium,
        state_share_vnd=state,
        province_share_vnd=local,
        donor_share_vnd=donor,
        schedule_id=schedule.pk,
        rule_ids=tuple(r.pk for r in used),
    )
    return price


def _price_vsi(*, member, household, months, on_date, income_vnd, support_months_used) -> Price:
    if months < 1:
        raise ApplicationError(str(_("Voluntary SI is paid for at least one month.")))
    if member.status in INACTIVE_STATUSES:
        return Price(product=Product.VOLUNTARY_SI, months=months, on_date=on_date, eligible=False, reason="inactive")
    params = vsi_parameters_on(on_date)
    schedule = premium_schedule_on(on_date)
    income = params.min_income_vnd if income_vnd is None else income_vnd
    maximum = params.max_income_base_multiple * schedule.base_salary_vnd
    if not params.min_income_vnd <= income <= maximum:
        raise ApplicationError(
            str(_("The chosen income must be between %(lo)s and %(hi)s đồng a month."))
            % {"lo": f"{params.min_income_vnd:,}", "hi": f"{maximum:,}"}
        )
    shares = {"other": params.share_other}
    if household.poverty_class == PovertyClass.POOR:
        shares["poor"] = params.share_poor
    if household.poverty_class == PovertyClass.NEAR_POOR:
        shares["near_poor"] = params.share_near_poor
    if household.is_ethnic_minority:
        shares["ethnic_minority"] = params.share_ethnic_minority
    group, share = max(shares.items(), key=lambda kv: kv[1])
    premium = _vnd(params.contribution_rate * income * months)
    # Support is a share of the *minimum* contribution, for at most support_years_cap years.
    # The months already used are stored on the member; a caller may know of more.
    used = max(support_months_used, getattr(member, "vsi_support_months_used", 0) or 0)
    supported_months = max(0, min(months, params.support_years_cap * 12 - used))
    state = _vnd(share * params.contribution_rate * params.min_income_vnd * supported_months)
    return Price(
        product=Product.VOLUNTARY_SI,
        months=months,
        on_date=on_date,
        eligible=True,
        group=group,
        premium_vnd=premium,
        state_share_vnd=state,
        donor_share_vnd=premium - state,
        schedule_id=params.pk,
    )


def price_member(
    *,
    member: Member,
    product: str = Product.HI_HOUSEHOLD,
    months: int = 12,
    on_date: date,
    ladder_position: int | None = None,
    household_members: list[Member] | None = None,
    income_vnd: int | None = None,
    support_months_used: int = 0,
) -> Price:
    """Price one member's card. Reads data only; no side effects.

    For a household-group (GD) member the place on the ladder comes from `ladder_position`,
    else from `household_members` (default: the household's members in the database).
    """
    household = member.household
    if product == Product.VOLUNTARY_SI:
        return _price_vsi(
            member=member,
            household=household,
            months=months,
            on_date=on_date,
            income_vnd=income_vnd,
            support_months_used=support_months_used,
        )
    if product != Product.HI_HOUSEHOLD:
        raise ApplicationError(f"Unknown product {product!r}.")
    if ladder_position is None and not hi_support_groups(member, household):
        if household_members is not None:
            members = household_members
        else:
            members = list(household.members.all()) if household.pk else []
        if member.personal_id not in {m.personal_id for m in members}:
            members = [*members, member]
        ladder_position = _ladder_positions(members, household, on_date).get(member.personal_id)
    return _price_hi(
        member=member, household=household, months=months, on_date=on_date, ladder_position=ladder_position
    )


def price_household(
    *,
    household: Household,
    product: str = Product.HI_HOUSEHOLD,
    months: int = 12,
    on_date: date,
    members: list[Member] | None = None,
) -> HouseholdPrice:
    """Price every member of a household together (the ladder is a household matter)."""
    members = list(household.members.all()) if members is None else members
    positions = _ladder_positions(members, household, on_date)
    result = HouseholdPrice(household_id=household.pk, product=product, months=months, on_date=on_date)
    for m in sorted(members, key=_ladder_order):
        m.household = household
        if product == Product.HI_HOUSEHOLD:
            price = _price_hi(
                member=m,
                household=household,
                months=months,
                on_date=on_date,
                ladder_position=positions.get(m.personal_id),
            )
        else:
            price = price_member(member=m, product=product, months=months, on_date=on_date)
        result.lines.append((m, price))
    return result
