"""Localities and personas for registry tests: Hà Tĩnh (42) and Hà Nội (1) of the 2025 scheme,
with two communes in Hà Tĩnh and one in Hà Nội."""

from datetime import date

import pytest

from beneficiaries.identifiers import make_personal_id
from beneficiaries.localities import ascii_fold
from beneficiaries.models import Level, Locality, Relation, Scheme
from beneficiaries.services.registry import MemberInput
from donors.models import Role, StaffScope, User


def _loc(level, code, name, province=None):
    loc, _ = Locality.objects.get_or_create(
        scheme=Scheme.CURRENT,
        level=level,
        code=code,
        defaults={
            "name": name,
            "name_ascii": ascii_fold(name),
            "division_type": level,
            "codename": ascii_fold(name).replace(" ", "_"),
            "parent": province,
            "province": province,
        },
    )
    if province is None and loc.province_id is None:
        loc.province = loc
        loc.save(update_fields=["province"])
    return loc


@pytest.fixture
def ha_tinh(db):
    return _loc(Level.PROVINCE, 42, "Tỉnh Hà Tĩnh")


@pytest.fixture
def ha_noi(db):
    return _loc(Level.PROVINCE, 1, "Thành phố Hà Nội")


@pytest.fixture
def thanh_sen(ha_tinh):
    return _loc(Level.COMMUNE, 18073, "Phường Thành Sen", ha_tinh)


@pytest.fixture
def tran_phu(ha_tinh):
    return _loc(Level.COMMUNE, 18074, "Phường Trần Phú", ha_tinh)


@pytest.fixture
def ba_dinh(ha_noi):
    return _loc(Level.COMMUNE, 4, "Phường Ba Đình", ha_noi)


def _user(email, role, *localities):
    user = User.objects.create_user(email, "pw-for-tests", role=role, full_name=email.split("@")[0])
    for loc in localities:
        StaffScope.objects.create(user=user, locality=loc)
    return user


@pytest.fixture
def officer(thanh_sen):
    """Commune officer of Phường Thành Sen (Hà Tĩnh)."""
    return _user("officer@test.vn", Role.COMMUNE_OFFICER, thanh_sen)


@pytest.fixture
def reviewer_ha_tinh(ha_tinh):
    return _user("reviewer.hatinh@test.vn", Role.FRONT_REVIEWER, ha_tinh)


@pytest.fixture
def second_reviewer_ha_tinh(ha_tinh):
    return _user("reviewer2.hatinh@test.vn", Role.FRONT_REVIEWER, ha_tinh)


@pytest.fixture
def reviewer_ha_noi(ha_noi):
    return _user("reviewer.hanoi@test.vn", Role.FRONT_REVIEWER, ha_noi)


@pytest.fixture
def donor(db):
    return _user("donor@test.vn", Role.DONOR)


_serial = iter(range(1, 10**6))


def member_input(
    name="Nguyễn Văn An", dob=date(1980, 5, 17), sex="male", relation=Relation.HEAD, province_code=42, **extra
):
    pid = extra.pop("personal_id", None) or make_personal_id(
        province_code=province_code, date_of_birth=dob, sex=sex, serial=next(_serial)
    )
    return MemberInput(full_name=name, date_of_birth=dob, sex=sex, personal_id=pid, relation=relation, **extra)


@pytest.fixture(scope="session", autouse=True)
def compiled_translations():
    """The .mo files are build output (gitignored): compile them as `bootstrap` does."""
    from django.core.management import call_command
    from django.utils.translation import trans_real

    call_command("compile_translations", verbosity=0)
    trans_real._translations.clear()


@pytest.fixture(autouse=True)
def english():
    """Service messages are asserted in English (the catalogue default is Vietnamese);
    page tests pick their language per request."""
    from django.utils import translation

    with translation.override("en"):
        yield
