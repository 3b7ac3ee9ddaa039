"""Targets: recorded in the scheme they were set in, read in the 2025 scheme through the
locality mapping (a legacy Hà Nội 2022 target counts for the 2025 Hà Nội)."""

from __future__ import annotations

from collections import defaultdict

from beneficiaries.models import Level, Locality, Scheme

from .models import Target


def current_units(locality: Locality) -> list[Locality]:
    """The 2025 units a target's locality stands for. A legacy province with no direct mapping
    row is followed through its communes' mappings to their 2025 provinces."""
    if locality.scheme == Scheme.CURRENT:
        return [locality]
    mapped = list(Locality.objects.filter(mappings_in__legacy=locality).distinct())
    if mapped or locality.level != Level.PROVINCE:
        return mapped
    return list(
        Locality.objects.filter(
            scheme=Scheme.CURRENT,
            level=Level.PROVINCE,
            pk__in=Locality.objects.filter(mappings_in__legacy__province=locality).values("province_id"),
        )
    )


def targets_in_current_scheme(*, year: int, type: str) -> dict[int, dict[str, int]]:
    """2025 locality id → {"number", "baseline"} summed over the targets that map to it.
    Several legacy provinces merged into one 2025 province add up; a target set directly on a
    2025 unit wins over mapped legacy ones for that unit."""
    direct: dict[int, dict[str, int]] = {}
    mapped: dict[int, dict[str, int]] = defaultdict(lambda: {"number": 0, "baseline": 0})
    for t in Target.objects.filter(year=year, type=type).select_related("locality"):
        if t.locality.scheme == Scheme.CURRENT:
            direct[t.locality_id] = {"number": t.number, "baseline": t.baseline}
            continue
        for unit in current_units(t.locality):
            mapped[unit.pk]["number"] += t.number
            mapped[unit.pk]["baseline"] += t.baseline
    return {**mapped, **direct}


def target_upsert(*, locality: Locality, year: int, type: str, number: int, baseline: int = 0, source: str = ""):
    target, _ = Target.objects.update_or_create(
        locality=locality, year=year, type=type, defaults={"number": number, "baseline": baseline, "source": source}
    )
    return target


# Hà Nội, end of October 2022 (seed-article.txt: Vietnam Social Security news, 30/10/2022):
#   HI: "nearly 98 per cent of the yearly target, requiring ... an additional 161,000 participants"
#       → target = 161,000 / (1 − 0.98) = 8,050,000; baseline = 8,050,000 − 161,000 = 7,889,000 (98.0 %).
#   Voluntary SI: "nearly 62 per cent of the yearly goal ... an additional 41,000 participants"
#       → target = 41,000 / (1 − 0.62) = 107,894.7 → 107,895; baseline = 107,895 − 41,000 = 66,895 (62.0 %).
# Hà Tĩnh: 142,911 social insurance participants by end of September 2022 (same article); the
# article gives no target, so the demo sets an illustrative one (marked as such in `source`).
ARTICLE = "Vietnam Social Security, 30/10/2022: 'Social insurance agencies of localities increase measures…'"
SEED_TARGETS = [
    # (legacy province code, type, number, baseline, source)
    (1, "hi", 8_050_000, 7_889_000, f"{ARTICLE}; 161,000 more needed at 98 % → 161,000/0.02"),
    (1, "si_voluntary", 107_895, 66_895, f"{ARTICLE}; 41,000 more needed at 62 % → 41,000/0.38"),
    (42, "hi", 1_300_000, 1_280_000, "Illustrative demo target (the article gives none for Hà Tĩnh)"),
    (42, "si_voluntary", 60_000, 52_000, "Illustrative demo target (the article gives none for Hà Tĩnh)"),
]


def seed_targets(year: int = 2022) -> list[Target]:
    out = []
    for code, type_, number, baseline, source in SEED_TARGETS:
        province = Locality.objects.get(scheme=Scheme.LEGACY, level=Level.PROVINCE, code=code)
        out.append(
            target_upsert(locality=province, year=year, type=type_, number=number, baseline=baseline, source=source)
        )
    return out
