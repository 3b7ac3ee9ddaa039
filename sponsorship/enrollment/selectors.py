"""Dashboard rows from the rollups and the targets (scoped by the viewer's localities)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Max, Q, Sum

from beneficiaries.models import Level, Locality, Scheme
from donors.scopes import is_nationwide, locality_filter

from .models import EnrollmentRollup, Target
from .targets import targets_in_current_scheme


def latest_target_year(*, type: str | None = None, not_after: int | None = None) -> int | None:
    """The latest year with a target (of `type`, up to `not_after`), or None: what the
    dashboard, the home page and the sponsor page show by default."""
    qs = Target.objects.all()
    if type is not None:
        qs = qs.filter(type=type)
    if not_after is not None:
        qs = qs.filter(year__lte=not_after)
    return qs.aggregate(latest=Max("year"))["latest"]


def _rows(qs, key: str, names: dict[int, str], targets: dict[int, dict[str, int]]) -> list[dict]:
    cells: dict[int, dict] = {}
    for r in qs.values(key, "month").annotate(
        n=Sum("new_enrollments"), r=Sum("renewals"), raised=Sum("raised_vnd"), pending=Sum("pending_vnd")
    ):
        row = cells.setdefault(
            r[key], {"new": 0, "renewals": 0, "raised_vnd": 0, "pending_vnd": 0, "monthly": [0] * 12}
        )
        row["new"] += r["n"]
        row["renewals"] += r["r"]
        row["raised_vnd"] += r["raised"]
        row["pending_vnd"] += r["pending"]
        row["monthly"][r["month"] - 1] += r["n"]
    out = []
    for loc_id in sorted(set(cells) | set(targets), key=lambda i: names.get(i, "")):
        if loc_id not in names:
            continue
        row = cells.get(loc_id, {"new": 0, "renewals": 0, "raised_vnd": 0, "pending_vnd": 0, "monthly": [0] * 12})
        t = targets.get(loc_id)
        target = t["number"] if t else None
        reached = (t["baseline"] if t else 0) + row["new"]
        out.append(
            {
                "locality_id": loc_id,
                "name": names[loc_id],
                "target": target,
                "baseline": t["baseline"] if t else None,
                **row,
                "gap": max(target - reached, 0) if target is not None else None,
                "percent": round(100 * reached / target, 2) if target else None,
            }
        )
    return out


def dashboard_rows(user, *, year: int, type: str, province_id: int | None = None) -> list[dict]:
    """Province rows (province_id None) or one province's commune rows, limited to what `user`
    covers. Gap = target − baseline − sponsored new enrollments (never below zero)."""
    targets = targets_in_current_scheme(year=year, type=type)
    base = EnrollmentRollup.objects.filter(year=year, type=type)
    scope = locality_filter(user, "locality")
    if province_id is None:
        if is_nationwide(user):
            qs = base.filter(level=Level.PROVINCE)
            names = dict(Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.PROVINCE).values_list("id", "name"))
        else:
            qs = base.filter(level=Level.COMMUNE).filter(scope)
            allowed = Locality.objects.filter(scheme=Scheme.CURRENT).filter(
                Q(pk__in=qs.values("province_id")) | Q(pk__in=_scope_provinces(user))
            )
            names = dict(allowed.filter(level=Level.PROVINCE).values_list("id", "name"))
        return _rows(qs, "province_id" if not is_nationwide(user) else "locality_id", names, targets)
    qs = base.filter(level=Level.COMMUNE, province_id=province_id).filter(scope)
    names = dict(
        Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.COMMUNE, province_id=province_id)
        .filter(_locality_scope(user))
        .filter(Q(pk__in=qs.values("locality_id")) | Q(pk__in=[k for k in targets]))
        .values_list("id", "name")
    )
    return _rows(qs, "locality_id", names, targets)


def _locality_scope(user) -> Q:
    if is_nationwide(user):
        return Q()
    from donors.scopes import scope_localities

    provinces, communes = scope_localities(user)
    return Q(pk__in=communes) | Q(province_id__in=provinces)


def _scope_provinces(user) -> list[int]:
    from donors.scopes import scope_localities

    provinces, _communes = scope_localities(user)
    return list(provinces)


def public_rows(*, year: int, type: str) -> list[dict]:
    """Per-province progress for the public page: counts only; a cell (new enrollments or
    renewals) under ENROLLMENT_PUBLIC_MIN_CELL is suppressed (None)."""
    k = settings.ENROLLMENT_PUBLIC_MIN_CELL
    out = []
    for row in dashboard_rows(_Nationwide(), year=year, type=type):
        if not row["new"] and not row["renewals"] and row["target"] is None:
            continue
        out.append(
            {
                "name": row["name"],
                "target": row["target"],
                "percent": row["percent"] if row["new"] >= k else None,
                "new": row["new"] if row["new"] >= k else None,
                "renewals": row["renewals"] if row["renewals"] >= k else None,
            }
        )
    return out


class _Nationwide:
    """A stand-in viewer that sees every province (aggregates only, used by the public page)."""

    is_authenticated = True
    is_active = True
    is_superuser = True
    role = "admin"
    pk = None
