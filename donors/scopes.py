"""The one place that decides "may this user act on this locality".

Scoped staff (commune officers, Front reviewers, agency viewers) hold StaffScope rows: a
province covers every unit in it, a commune covers itself. Finance and admins see every
locality; donors and the public see none (personal data never reaches them).
"""

from __future__ import annotations

from django.db.models import Q

from beneficiaries.models import Level, Locality

from .models import Role, User

NATIONWIDE_ROLES = {Role.ADMIN, Role.FINANCE}


def is_nationwide(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.is_superuser or user.role in NATIONWIDE_ROLES))


def scope_localities(user: User) -> tuple[set[int], set[int]]:
    """(province ids, commune ids) the user's scope names directly. Cached on the user object."""
    cached = getattr(user, "_scope_cache", None)
    if cached is None:
        provinces, communes = set(), set()
        if user.is_authenticated and user.is_active:
            for locality_id, level in user.scopes.values_list("locality_id", "locality__level"):
                (provinces if level == Level.PROVINCE else communes).add(locality_id)
        cached = (provinces, communes)
        user._scope_cache = cached
    return cached


def user_may_act_on_locality(user: User, locality: Locality, *, roles: set[str] | None = None) -> bool:
    """True when `user` (optionally required to hold one of `roles`) covers `locality`."""
    if not (user.is_authenticated and user.is_active):
        return False
    if roles is not None and user.role not in roles and not user.is_superuser:
        return False
    if is_nationwide(user):
        return True
    provinces, communes = scope_localities(user)
    return locality.pk in communes or locality.province_id in provinces


def locality_filter(user: User, field: str = "locality", *, roles: set[str] | None = None) -> Q:
    """A Q that keeps only rows whose `field` (a Locality FK) the user covers.

    Use it in every selector that lists records tied to a locality, so list and detail
    views and the API share one rule.
    """
    if not (user.is_authenticated and user.is_active):
        return Q(pk__in=[])
    if roles is not None and user.role not in roles and not user.is_superuser:
        return Q(pk__in=[])
    if is_nationwide(user):
        return Q()
    provinces, communes = scope_localities(user)
    if not provinces and not communes:
        return Q(pk__in=[])
    return Q(**{f"{field}__in": communes}) | Q(**{f"{field}__province__in": provinces})
