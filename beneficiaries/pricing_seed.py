"""The published pricing data of FACTS §2–3, each row with its source document.

Loaded by migration 0003 and by `manage.py seed_pricing` (idempotent: keyed on valid_from /
(group, jurisdiction, valid_from)). After seeding, the rows are data: edit them in the admin.
"""

from datetime import date
from decimal import Decimal as D

LADDER = {"ladder_1": D("1"), "ladder_2": D("0.7"), "ladder_3": D("0.6"), "ladder_4": D("0.5"), "ladder_5": D("0.4")}

PREMIUM_SCHEDULES = [
    (date(2019, 7, 1), 1_490_000, "Decree 38/2019/ND-CP (base salary); Law on HI art. 13; Decree 146/2018 art. 7"),
    (date(2023, 7, 1), 1_800_000, "Decree 24/2023/ND-CP (base salary); Law on HI art. 13"),
    (date(2024, 7, 1), 2_340_000, "Decree 73/2024/ND-CP (base salary); Law on HI art. 13"),
    (date(2026, 7, 1), 2_530_000, "Announced base salary from 2026-07-01 (?) — single news source, check"),
]

# group, share, valid_from, valid_to, source
SUPPORT_RULES = [
    ("poor", D("1"), date(2018, 12, 1), None, "Decree 146/2018/ND-CP art. 3"),
    ("near_poor", D("0.7"), date(2018, 12, 1), None, "Decree 146/2018/ND-CP art. 4"),
    ("near_poor_poor_commune", D("1"), date(2018, 12, 1), None, "Decree 146/2018/ND-CP art. 4 (poor communes)"),
    ("student", D("0.3"), date(2018, 12, 1), date(2025, 8, 14), "Decree 146/2018/ND-CP art. 4"),
    ("student", D("0.5"), date(2025, 8, 15), None, "Decree 188/2025/ND-CP"),
    ("average_farming", D("0.3"), date(2018, 12, 1), None, "Decree 146/2018/ND-CP art. 4"),
]

# valid_from, min income, poor, near-poor, ethnic minority, other, source
VOLUNTARY_SI = [
    (
        date(2022, 1, 1),
        1_500_000,
        D("0.3"),
        D("0.25"),
        D("0.1"),
        D("0.1"),
        "Decree 07/2021/ND-CP (rural poverty line); Decree 134/2015/ND-CP art. 14",
    ),
    (date(2025, 7, 1), 1_500_000, D("0.5"), D("0.4"), D("0.3"), D("0.2"), "Decree 159/2025/ND-CP"),
    (
        date(2027, 1, 1),
        2_200_000,
        D("0.5"),
        D("0.4"),
        D("0.3"),
        D("0.2"),
        "Decree 351/2025/ND-CP (rural poverty line 2027–2030) (?); Decree 159/2025/ND-CP",
    ),
]


def seed_pricing(apps=None) -> None:
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    PremiumSchedule = apps.get_model("beneficiaries", "PremiumSchedule")
    SupportRule = apps.get_model("beneficiaries", "SupportRule")
    VoluntarySIParameters = apps.get_model("beneficiaries", "VoluntarySIParameters")
    for valid_from, base, source in PREMIUM_SCHEDULES:
        PremiumSchedule.objects.get_or_create(
            valid_from=valid_from,
            defaults={"base_salary_vnd": base, "hi_rate": D("0.045"), "source": source, **LADDER},
        )
    for group, share, valid_from, valid_to, source in SUPPORT_RULES:
        SupportRule.objects.get_or_create(
            group=group,
            jurisdiction="national",
            locality=None,
            valid_from=valid_from,
            defaults={"share": share, "valid_to": valid_to, "source": source},
        )
    for valid_from, min_income, poor, near_poor, ethnic, other, source in VOLUNTARY_SI:
        VoluntarySIParameters.objects.get_or_create(
            valid_from=valid_from,
            defaults={
                "contribution_rate": D("0.22"),
                "min_income_vnd": min_income,
                "max_income_base_multiple": 20,
                "share_poor": poor,
                "share_near_poor": near_poor,
                "share_ethnic_minority": ethnic,
                "share_other": other,
                "support_years_cap": 10,
                "source": source,
            },
        )
