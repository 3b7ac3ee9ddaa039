from beneficiaries.demo import demo_households_seed
from beneficiaries.models import Member, MemberStatus, PremiumSchedule
from beneficiaries.pricing_seed import seed_pricing
from donors.models import Role, StaffScope, User


def test_demo_households_are_created_once_and_some_are_approved(
    thanh_sen, tran_phu, ba_dinh, ha_tinh, ha_noi, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    User.objects.create_user("admin@chungtay.test", "x", role=Role.ADMIN, is_superuser=True)
    reviewer = User.objects.create_user("reviewer@chungtay.test", "x", role=Role.FRONT_REVIEWER)
    StaffScope.objects.create(user=reviewer, locality=ha_tinh)
    first = demo_households_seed()
    assert first["members"] > 0 and first["approved_now"] > 0
    assert Member.objects.filter(locality=thanh_sen).exists()
    second = demo_households_seed()
    assert second["members"] == first["members"] and second["approved_now"] == 0
    assert Member.objects.filter(status=MemberStatus.APPROVED).count() == first["approved_now"]


def test_seeding_pricing_again_changes_nothing(db):
    before = list(PremiumSchedule.objects.values())
    seed_pricing()
    assert list(PremiumSchedule.objects.values()) == before and len(before) == 4
