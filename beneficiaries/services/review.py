"""The review workflow: draft → submitted → approved | rejected | returned → resubmitted;
approved → suspended. Only a Front reviewer whose scope covers the locality decides, and
never on a record they submitted themselves.

Every transition is a conditional UPDATE on the current status (`filter(pk, status__in=FROM)
.update(...)`), so two reviewers racing, or one double click, move a member once; the
loser sees a ConflictError (or a no-op when the member is already where it was sent).
"""

from __future__ import annotations

from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from config.exceptions import ApplicationError, ConflictError
from donors.models import Role, User
from donors.scopes import user_may_act_on_locality

from ..models import Locality, LocalityFreeze, Member, MemberStatus, MemberTransition
from .registry import INTAKE_ROLES, ensure_may_change

S = MemberStatus
REVIEW_ROLES = {Role.FRONT_REVIEWER, Role.ADMIN}
DECIDABLE = [S.SUBMITTED, S.RESUBMITTED]


def _transition(
    *, user: User, member: Member, from_statuses, to_status: str, reason: str = "", roles, set_submitter=False
) -> Member:
    ensure_may_change(user=user, locality=member.locality, roles=roles)
    with transaction.atomic():
        current = Member.objects.select_for_update().get(pk=member.pk)
        if current.status == to_status:
            return current  # already there: running a transition twice is a no-op
        if current.status not in from_statuses:
            raise ConflictError(
                _("A %(status)s member cannot become %(to)s.")
                % {"status": current.get_status_display().lower(), "to": S(to_status).label.lower()},
                code="invalid_transition",
            )
        if to_status == S.APPROVED and current.submitted_by_id == user.pk:
            raise ApplicationError(_("Whoever submitted a record may not approve it."), code="own_submission")
        fields = {"status": to_status, "updated_at": timezone.now()}
        if set_submitter:
            fields["submitted_by"] = user
        updated = Member.objects.filter(pk=current.pk, status=current.status).update(**fields)
        if updated != 1:  # cannot happen under the row lock; kept as the guard's contract
            raise ConflictError(_("The member changed meanwhile; try again."))
        MemberTransition.objects.create(
            member=current, actor=user, from_status=current.status, to_status=to_status, reason=reason
        )
        current.refresh_from_db()
        # Matching: an approval asks for a run of the province (after commit); a suspension
        # takes back the member's cards not yet sent to the agency.
        from sponsorship.matching import hooks as matching_hooks

        matching_hooks.member_status_changed(member_id=current.pk, to_status=to_status)
        return current


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(_("A reason is required."), extra={"fields": {"reason": _("Required.")}})
    return reason


def member_submit(*, user: User, member: Member) -> Member:
    """draft → submitted, returned → resubmitted. Records the submitter."""
    # Each target has exactly one source, so a stale `member.status` yields a ConflictError
    # under the row lock rather than a wrong transition.
    returned = member.status == S.RETURNED
    return _transition(
        user=user,
        member=member,
        from_statuses=[S.RETURNED] if returned else [S.DRAFT],
        to_status=S.RESUBMITTED if returned else S.SUBMITTED,
        roles=INTAKE_ROLES,
        set_submitter=True,
    )


def member_approve(*, user: User, member: Member) -> Member:
    return _transition(user=user, member=member, from_statuses=DECIDABLE, to_status=S.APPROVED, roles=REVIEW_ROLES)


def member_reject(*, user: User, member: Member, reason: str) -> Member:
    reason = _require_reason(reason)
    return _transition(
        user=user, member=member, from_statuses=DECIDABLE, to_status=S.REJECTED, reason=reason, roles=REVIEW_ROLES
    )


def member_return(*, user: User, member: Member, reason: str) -> Member:
    reason = _require_reason(reason)
    return _transition(
        user=user, member=member, from_statuses=DECIDABLE, to_status=S.RETURNED, reason=reason, roles=REVIEW_ROLES
    )


def member_suspend(*, user: User, member: Member, reason: str) -> Member:
    """approved → suspended (died, moved, now covered by the state)."""
    reason = _require_reason(reason)
    return _transition(
        user=user, member=member, from_statuses=[S.APPROVED], to_status=S.SUSPENDED, reason=reason, roles=REVIEW_ROLES
    )


def members_bulk_approve(*, user: User, members) -> dict[str, int]:
    """Approve every decidable member of `members` the user may decide on.

    Set-based: one UPDATE guarded on status, scope and submitter, one INSERT of history rows.
    Returns counts of approved and skipped members; safe to run twice.
    """
    from donors.scopes import locality_filter

    frozen = LocalityFreeze.objects.filter(unfrozen_at__isnull=True).values("locality_id")
    with transaction.atomic():
        qs = (
            Member.objects.filter(pk__in=[m.pk for m in members] if isinstance(members, list) else members.values("pk"))
            .filter(locality_filter(user, "locality", roles=REVIEW_ROLES))
            .filter(status__in=DECIDABLE)
            .exclude(submitted_by=user)
            .exclude(locality_id__in=frozen)
            .exclude(locality__province_id__in=frozen)
        )
        rows = list(qs.select_for_update(of=("self",)).values_list("pk", "status"))
        ids = [pk for pk, _status in rows]
        Member.objects.filter(pk__in=ids, status__in=DECIDABLE).update(status=S.APPROVED, updated_at=timezone.now())
        now = timezone.now()
        MemberTransition.objects.bulk_create(
            [
                MemberTransition(member_id=pk, actor=user, at=now, from_status=st, to_status=S.APPROVED)
                for pk, st in rows
            ],
            batch_size=2000,
        )
        from sponsorship.matching import hooks as matching_hooks  # a matching run, after commit

        matching_hooks.members_approved(ids)
    total = len(members) if isinstance(members, list) else members.count()
    return {"approved": len(ids), "skipped": total - len(ids)}


@transaction.atomic
def locality_freeze(*, user: User, locality: Locality, reason: str = "") -> LocalityFreeze:
    """Freeze a locality's list. Idempotent: an already frozen locality keeps its freeze."""
    if not user_may_act_on_locality(user, locality, roles=REVIEW_ROLES):
        raise Http404(_("Not found."))
    freeze = LocalityFreeze.objects.filter(locality=locality, unfrozen_at__isnull=True).first()
    if freeze:
        return freeze
    return LocalityFreeze.objects.create(locality=locality, frozen_by=user, reason=reason)


@transaction.atomic
def locality_unfreeze(*, user: User, locality: Locality) -> int:
    """Unfreeze; returns how many active freezes were lifted (0 when it was not frozen)."""
    if not user_may_act_on_locality(user, locality, roles=REVIEW_ROLES):
        raise Http404(_("Not found."))
    return LocalityFreeze.objects.filter(locality=locality, unfrozen_at__isnull=True).update(
        unfrozen_by=user, unfrozen_at=timezone.now()
    )
