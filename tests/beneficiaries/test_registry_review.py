from datetime import date

import pytest
from django.db import IntegrityError
from django.http import Http404

from beneficiaries.identifiers import personal_id_errors
from beneficiaries.models import Member, MemberStatus, MemberTransition, PovertyClass
from beneficiaries.selectors import member_get, member_list
from beneficiaries.services.registry import household_create
from beneficiaries.services.review import (
    locality_freeze,
    locality_unfreeze,
    member_approve,
    member_reject,
    member_return,
    member_submit,
    member_suspend,
    members_bulk_approve,
)
from config.exceptions import ApplicationError, ConflictError

from .conftest import member_input

S = MemberStatus


def register(officer, commune, *inputs, ref="HT-001", **hh):
    return household_create(
        user=officer,
        locality=commune,
        external_ref=ref,
        address="Tổ 3, Phường Thành Sen",
        poverty_class=hh.pop("poverty_class", PovertyClass.NEAR_POOR),
        certificate_number="CN-2025-17",
        certificate_year=2025,
        members=list(inputs) or [member_input()],
        **hh,
    )


@pytest.mark.parametrize(
    "pid,dob,sex,field",
    [
        ("04208001234", date(1980, 1, 1), "male", "personal_id"),  # 11 digits
        ("04208001234x", date(1980, 1, 1), "male", "personal_id"),
        ("999080012345", date(1980, 1, 1), "male", "personal_id"),  # no province 999
        ("042680012345", date(1980, 1, 1), "male", "personal_id"),  # century digit 6
        ("042081012345", date(1980, 1, 1), "male", "date_of_birth"),  # says 1981
        ("042280012345", date(1980, 1, 1), "male", "date_of_birth"),  # says 2080
        ("042180012345", date(1980, 1, 1), "male", "sex"),  # 1 = female
    ],
)
def test_personal_id_errors_name_the_field_that_is_wrong(pid, dob, sex, field):
    assert field in personal_id_errors(pid, date_of_birth=dob, sex=sex)


def test_personal_id_of_a_woman_born_in_2003_is_valid():
    assert personal_id_errors("001303123456", date_of_birth=date(2003, 4, 2), sex="female") == {}


def test_officer_registers_a_household_with_members_in_draft(officer, thanh_sen):
    hh = register(officer, thanh_sen, member_input(), member_input("Trần Thị Bé", date(2010, 2, 3), "female"))
    members = list(hh.members.order_by("id"))
    assert [m.status for m in members] == [S.DRAFT, S.DRAFT]
    assert members[1].name_ascii == "tran thi be"
    assert MemberTransition.objects.filter(member__household=hh, to_status=S.DRAFT).count() == 2


def test_invalid_member_rejects_the_whole_household_with_field_errors(officer, thanh_sen):
    bad = member_input(personal_id="042180012345")  # female digit for a man
    with pytest.raises(ApplicationError) as err:
        register(officer, thanh_sen, member_input(), bad)
    assert "sex" in err.value.extra["fields"]["members[1]"]
    assert not Member.objects.exists()


def test_personal_id_is_unique_in_the_database(officer, thanh_sen):
    m = register(officer, thanh_sen).members.get()
    with pytest.raises(IntegrityError):
        Member.objects.create(
            household=m.household,
            locality=thanh_sen,
            full_name="X",
            name_ascii="x",
            date_of_birth=m.date_of_birth,
            sex="male",
            personal_id=m.personal_id,
            relation="other",
        )


def test_registering_the_same_personal_id_twice_is_refused(officer, thanh_sen):
    data = member_input()
    register(officer, thanh_sen, data)
    with pytest.raises(ConflictError):
        register(officer, thanh_sen, data, ref="HT-002")
    assert Member.objects.count() == 1


def test_near_duplicates_are_flagged_not_merged(officer, thanh_sen):
    register(officer, thanh_sen, member_input("Nguyễn Văn An", date(1980, 5, 17)))
    register(officer, thanh_sen, member_input("NGUYEN VAN AN", date(1980, 5, 17)), ref="HT-002")
    assert Member.objects.count() == 2
    assert Member.objects.filter(is_possible_duplicate=True).count() == 2


def test_officer_cannot_register_in_another_commune(officer, tran_phu):
    with pytest.raises(Http404):
        register(officer, tran_phu)


def test_reviewer_of_the_province_approves_what_the_officer_submitted(officer, reviewer_ha_tinh, thanh_sen):
    m = member_submit(user=officer, member=register(officer, thanh_sen).members.get())
    assert m.status == S.SUBMITTED and m.submitted_by == officer
    m = member_approve(user=reviewer_ha_tinh, member=m)
    assert m.status == S.APPROVED
    history = list(m.transitions.values_list("from_status", "to_status", "actor__email"))
    assert history == [
        ("", S.DRAFT, officer.email),
        (S.DRAFT, S.SUBMITTED, officer.email),
        (S.SUBMITTED, S.APPROVED, reviewer_ha_tinh.email),
    ]


def test_approving_twice_is_a_no_op(officer, reviewer_ha_tinh, thanh_sen):
    m = member_submit(user=officer, member=register(officer, thanh_sen).members.get())
    member_approve(user=reviewer_ha_tinh, member=m)
    member_approve(user=reviewer_ha_tinh, member=m)
    assert m.transitions.filter(to_status=S.APPROVED).count() == 1


def test_reviewer_of_another_province_cannot_decide_or_see(officer, reviewer_ha_noi, thanh_sen):
    m = member_submit(user=officer, member=register(officer, thanh_sen).members.get())
    with pytest.raises(Http404):
        member_approve(user=reviewer_ha_noi, member=m)
    with pytest.raises(Http404):
        member_get(user=reviewer_ha_noi, pk=m.pk)
    assert not member_list(user=reviewer_ha_noi).exists()
    m.refresh_from_db()
    assert m.status == S.SUBMITTED


def test_commune_officer_cannot_approve(officer, thanh_sen):
    m = member_submit(user=officer, member=register(officer, thanh_sen).members.get())
    with pytest.raises(Http404):
        member_approve(user=officer, member=m)


def test_submitter_may_not_approve_their_own_record(reviewer_ha_tinh, thanh_sen):
    m = register(reviewer_ha_tinh, thanh_sen).members.get()
    m = member_submit(user=reviewer_ha_tinh, member=m)
    with pytest.raises(ApplicationError, match="submitted"):
        member_approve(user=reviewer_ha_tinh, member=m)


def test_reject_return_and_suspend_need_a_reason(officer, reviewer_ha_tinh, thanh_sen):
    m = member_submit(user=officer, member=register(officer, thanh_sen).members.get())
    for service in (member_reject, member_return):
        with pytest.raises(ApplicationError, match="reason"):
            service(user=reviewer_ha_tinh, member=m, reason="  ")
    m = member_return(user=reviewer_ha_tinh, member=m, reason="Thiếu giấy chứng nhận hộ cận nghèo")
    assert m.status == S.RETURNED
    m = member_submit(user=officer, member=m)
    assert m.status == S.RESUBMITTED
    m = member_approve(user=reviewer_ha_tinh, member=m)
    with pytest.raises(ApplicationError):
        member_suspend(user=reviewer_ha_tinh, member=m, reason="")
    m = member_suspend(user=reviewer_ha_tinh, member=m, reason="Đã chuyển đi")
    assert m.status == S.SUSPENDED
    assert m.transitions.last().reason == "Đã chuyển đi"


def test_a_rejected_member_cannot_be_approved(officer, reviewer_ha_tinh, thanh_sen):
    m = member_submit(user=officer, member=register(officer, thanh_sen).members.get())
    member_reject(user=reviewer_ha_tinh, member=m, reason="Không thuộc diện")
    with pytest.raises(ConflictError):
        member_approve(user=reviewer_ha_tinh, member=m)


def test_bulk_approve_skips_own_submissions_and_other_provinces(officer, reviewer_ha_tinh, reviewer_ha_noi, thanh_sen):
    hh = register(officer, thanh_sen, *[member_input(relation="child") for _ in range(4)])
    members = [member_submit(user=officer, member=m) for m in hh.members.all()]
    own = member_submit(user=reviewer_ha_tinh, member=register(reviewer_ha_tinh, thanh_sen, ref="R").members.get())
    assert members_bulk_approve(user=reviewer_ha_noi, members=[*members, own]) == {"approved": 0, "skipped": 5}
    assert members_bulk_approve(user=reviewer_ha_tinh, members=[*members, own]) == {"approved": 4, "skipped": 1}
    assert members_bulk_approve(user=reviewer_ha_tinh, members=[*members, own])["approved"] == 0
    assert MemberTransition.objects.filter(to_status=S.APPROVED).count() == 4


def test_frozen_locality_refuses_changes_until_a_reviewer_unfreezes(officer, reviewer_ha_tinh, thanh_sen):
    m = register(officer, thanh_sen).members.get()
    locality_freeze(user=reviewer_ha_tinh, locality=thanh_sen, reason="Hạn chót 30/10")
    with pytest.raises(ConflictError, match="frozen"):
        member_submit(user=officer, member=m)
    with pytest.raises(ConflictError):
        register(officer, thanh_sen, ref="HT-009")
    assert locality_unfreeze(user=reviewer_ha_tinh, locality=thanh_sen) == 1
    assert member_submit(user=officer, member=m).status == S.SUBMITTED


def test_officer_cannot_unfreeze(officer, reviewer_ha_tinh, thanh_sen):
    locality_freeze(user=reviewer_ha_tinh, locality=thanh_sen)
    with pytest.raises(Http404):
        locality_unfreeze(user=officer, locality=thanh_sen)
