"""Demo data for `./chungtay up`. Idempotent: users are found by email, scopes by pair.

Later issues extend `demo_seed` with households, donors, gifts and targets.
"""

from django.db import transaction

from beneficiaries.models import Level, Locality, Scheme
from donors.models import Role, StaffScope, User

DEMO_PASSWORD = "chungtay-demo"

# email, full name, role, scope (province code or (province code, commune name)), is_staff
DEMO_USERS = [
    ("donor@chungtay.test", "Nguyễn Văn An", Role.DONOR, None, False),
    ("officer@chungtay.test", "Trần Thị Bình", Role.COMMUNE_OFFICER, (42, "Phường Thành Sen"), False),
    ("reviewer@chungtay.test", "Lê Văn Cường", Role.FRONT_REVIEWER, 42, False),
    ("reviewer.hanoi@chungtay.test", "Phạm Thị Dung", Role.FRONT_REVIEWER, 1, False),
    ("agency@chungtay.test", "Hoàng Văn Em", Role.AGENCY_VIEWER, 1, False),
    ("finance@chungtay.test", "Vũ Thị Giang", Role.FINANCE, None, False),
    ("admin@chungtay.test", "Quản trị viên", Role.ADMIN, None, True),
]


def _scope_locality(scope) -> Locality:
    if isinstance(scope, int):
        return Locality.objects.get(scheme=Scheme.CURRENT, level=Level.PROVINCE, code=scope)
    province_code, commune_name = scope
    return Locality.objects.get(
        scheme=Scheme.CURRENT, level=Level.COMMUNE, province__code=province_code, name=commune_name
    )


@transaction.atomic
def demo_seed() -> list[tuple[str, str, str]]:
    """Create the demo logins (one per role). Returns (email, password, role label) rows."""
    rows = []
    for email, name, role, scope, is_staff in DEMO_USERS:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(
                email,
                DEMO_PASSWORD,
                full_name=name,
                role=role,
                is_staff=is_staff,
                is_superuser=role == Role.ADMIN,
            )
        if scope is not None:
            StaffScope.objects.get_or_create(user=user, locality=_scope_locality(scope))
        rows.append((email, DEMO_PASSWORD, str(Role(role).label)))
    return rows
