import pytest

from beneficiaries.models import Level, Locality, Scheme
from donors.models import Role
from donors.scopes import locality_filter, user_may_act_on_locality


def commune(province: Locality) -> Locality:
    return Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.COMMUNE, province=province).first()


def test_a_province_reviewer_acts_on_its_communes_but_not_another_province(make_user, ha_tinh, ha_noi):
    reviewer = make_user(Role.FRONT_REVIEWER, ha_tinh)
    assert user_may_act_on_locality(reviewer, ha_tinh)
    assert user_may_act_on_locality(reviewer, commune(ha_tinh))
    assert not user_may_act_on_locality(reviewer, ha_noi)
    assert not user_may_act_on_locality(reviewer, commune(ha_noi))


def test_a_commune_officer_covers_only_that_commune(make_user, ha_tinh):
    mine, other = Locality.objects.filter(level=Level.COMMUNE, province=ha_tinh)[:2]
    officer = make_user(Role.COMMUNE_OFFICER, mine)
    assert user_may_act_on_locality(officer, mine)
    assert not user_may_act_on_locality(officer, other)
    assert not user_may_act_on_locality(officer, ha_tinh)


@pytest.mark.parametrize("role", [Role.DONOR])
def test_donors_and_anonymous_users_act_on_no_locality(make_user, ha_tinh, role):
    from django.contrib.auth.models import AnonymousUser

    assert not user_may_act_on_locality(make_user(role), ha_tinh)
    assert not user_may_act_on_locality(AnonymousUser(), ha_tinh)


def test_finance_and_admin_are_nationwide(make_user, ha_noi):
    assert user_may_act_on_locality(make_user(Role.FINANCE), ha_noi)
    assert user_may_act_on_locality(make_user(Role.ADMIN), ha_noi)


def test_a_required_role_is_enforced(make_user, ha_tinh):
    officer = make_user(Role.COMMUNE_OFFICER, ha_tinh)
    assert user_may_act_on_locality(officer, ha_tinh)
    assert not user_may_act_on_locality(officer, ha_tinh, roles={Role.FRONT_REVIEWER})


def test_locality_filter_keeps_only_covered_rows(make_user, ha_tinh, ha_noi):
    from donors.models import StaffScope

    # StaffScope rows stand in for any record with a `locality` FK.
    holder = make_user(Role.AGENCY_VIEWER, ha_tinh, ha_noi, commune(ha_tinh), commune(ha_noi))
    records = StaffScope.objects.filter(user=holder)
    reviewer = make_user(Role.FRONT_REVIEWER, ha_tinh)
    kept = set(records.filter(locality_filter(reviewer)).values_list("locality_id", flat=True))
    assert kept == {ha_tinh.pk, commune(ha_tinh).pk}
    officer = make_user(Role.COMMUNE_OFFICER, commune(ha_noi))
    assert set(records.filter(locality_filter(officer)).values_list("locality_id", flat=True)) == {commune(ha_noi).pk}
    assert records.filter(locality_filter(make_user(Role.FINANCE))).count() == 4
    assert not records.filter(locality_filter(make_user(Role.DONOR))).exists()
