"""Demo households for `./chungtay up`: about 300 households in a dozen Hà Tĩnh communes
(Phường Thành Sen first, the demo officer's commune) and a few in Hà Nội, imported through
the real import path, with a third of them approved by the province's demo reviewer.

Idempotent: the file is generated deterministically, the import is keyed on personal ID,
and approval is a guarded bulk transition (a second run approves nothing new).
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from django.core.files.base import ContentFile

from donors.models import User

from .identifiers import make_personal_id
from .models import Household, ImportJob, Level, Locality, Member, MemberStatus, Scheme

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Phan", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương"]
MIDDLE = {"male": ["Văn", "Đức", "Hữu", "Minh"], "female": ["Thị", "Ngọc", "Thu", "Kim"]}
GIVEN = ["An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Hải", "Lan", "Linh", "Mai", "Nam", "Quân", "Sơn", "Trang"]
CLASSES = ["Hộ nghèo", "Hộ cận nghèo", "Hộ cận nghèo", "Hộ cận nghèo", "Hộ nông lâm ngư nghiệp", ""]
HEADER = (
    "Mã hộ,Họ và tên,Ngày sinh,Giới tính,Số CCCD,Quan hệ với chủ hộ,Địa chỉ,Mã xã,"
    "Hộ nghèo/Hộ cận nghèo,Học sinh/Sinh viên\n"
)


def _communes(province_code: int, first: str | None, count: int) -> list[Locality]:
    qs = Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.COMMUNE, province__code=province_code)
    chosen = list(qs.filter(name=first)) if first else []
    chosen += list(qs.exclude(pk__in=[c.pk for c in chosen]).order_by("code")[: count - len(chosen)])
    return chosen


def _csv(communes: list[tuple[Locality, int]], rnd: random.Random) -> str:
    lines = [HEADER]
    serial = 0
    for commune, households in communes:
        for h in range(1, households + 1):
            klass = rnd.choice(CLASSES)
            for k in range(rnd.randint(1, 5)):
                serial += 1
                sex = rnd.choice(("male", "female"))
                dob = (
                    date(1950, 1, 1) + timedelta(days=rnd.randint(0, 25000))
                    if k < 2
                    else date(2005, 1, 1) + timedelta(days=rnd.randint(0, 6500))
                )
                name = f"{rnd.choice(FAMILY)} {rnd.choice(MIDDLE[sex])} {rnd.choice(GIVEN)}"
                pid = make_personal_id(
                    province_code=commune.province.code,  # 2025 codes 1 and 42 equal the old ones
                    date_of_birth=dob,
                    sex=sex,
                    serial=900_000 + serial,
                )
                relation = ["Chủ hộ", "Vợ" if sex == "female" else "Chồng", "Con", "Con", "Cháu"][k]
                student = "x" if dob.year >= 2007 else ""
                lines.append(
                    f"DEMO-{commune.code}-{h:03d},{name},{dob:%d/%m/%Y},{'Nam' if sex == 'male' else 'Nữ'},{pid},"
                    f"{relation},Thôn {h % 9 + 1},{commune.code},{klass},{student}\n"
                )
    return "".join(lines)


def demo_households_seed() -> dict:
    """Create the demo registry once; later runs change nothing. Returns counts."""
    from .services.imports import import_job_run
    from .services.review import members_bulk_approve

    admin = User.objects.filter(email="admin@chungtay.test").first()
    if admin is None:
        return {"skipped": "no demo admin"}
    if not Household.objects.filter(external_ref__startswith="DEMO-").exists():
        rnd = random.Random(2025)
        plan = [(c, 30) for c in _communes(42, "Phường Thành Sen", 10)] + [(c, 15) for c in _communes(1, None, 3)]
        job = ImportJob(created_by=admin, original_name="demo.csv")
        job.file.save("demo-registry.csv", ContentFile(_csv(plan, rnd).encode()), save=True)
        import_job_run(job_id=job.pk)
    approved = 0
    for email in ("reviewer@chungtay.test", "reviewer.hanoi@chungtay.test"):
        reviewer = User.objects.filter(email=email).first()
        if reviewer is None:
            continue
        # The same third of the households every time: those whose number ends in 0, 3 or 6.
        members = Member.objects.filter(
            household__external_ref__startswith="DEMO-",
            status=MemberStatus.SUBMITTED,
            household__external_ref__regex=r"[036]$",
        )
        approved += members_bulk_approve(user=reviewer, members=members)["approved"]
    return {
        "households": Household.objects.filter(external_ref__startswith="DEMO-").count(),
        "members": Member.objects.filter(household__external_ref__startswith="DEMO-").count(),
        "approved_now": approved,
    }
