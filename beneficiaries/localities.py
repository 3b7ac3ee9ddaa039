"""Loading and finding localities (services and selectors for the Locality table)."""

from __future__ import annotations

import re
import unicodedata

from django.db import transaction
from django.db.models import Count, F, QuerySet

from .models import Level, Locality, LocalityMapping, Scheme

EXPECTED_COUNTS = {
    (Scheme.CURRENT, Level.PROVINCE): 34,
    (Scheme.CURRENT, Level.COMMUNE): 3321,
    (Scheme.LEGACY, Level.PROVINCE): 63,
    (Scheme.LEGACY, Level.DISTRICT): 696,
    (Scheme.LEGACY, Level.COMMUNE): 10051,
}


def ascii_fold(text: str) -> str:
    """'Tỉnh Hà Tĩnh' → 'tinh ha tinh' (đ has no decomposition, so it is mapped by hand)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).lower().split())


def _upsert(rows: list[Locality]) -> dict[int, int]:
    """Insert or update rows of one (scheme, level); return code → id."""
    Locality.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["scheme", "level", "code"],
        update_fields=["name", "name_ascii", "division_type", "codename", "parent", "province"],
        batch_size=2000,
    )
    scheme, level = rows[0].scheme, rows[0].level
    return dict(Locality.objects.filter(scheme=scheme, level=level).values_list("code", "id"))


@transaction.atomic
def localities_load() -> dict[tuple[str, str], int]:
    """Load both schemes and the legacy → 2025 mapping from `vietnam-provinces`.

    Idempotent: rows are upserted on (scheme, level, code) and mappings on their pair, so a
    second run changes nothing. Returns the count per (scheme, level).
    """
    import vietnam_provinces as vp
    from vietnam_provinces import legacy as lg

    def row(unit, scheme, level, parent_id=None, province_id=None):
        return Locality(
            scheme=scheme,
            level=level,
            code=int(unit.code.value),
            name=unit.name,
            name_ascii=ascii_fold(unit.name),
            division_type=str(unit.division_type.value),
            codename=unit.codename,
            parent_id=parent_id,
            province_id=province_id,
        )

    # Provinces first (province_id filled in a second pass: it points at the row itself).
    new_prov = _upsert([row(p, Scheme.CURRENT, Level.PROVINCE) for p in vp.Province.iter_all()])
    old_prov = _upsert([row(p, Scheme.LEGACY, Level.PROVINCE) for p in lg.Province.iter_all()])
    for ids in (new_prov, old_prov):
        Locality.objects.filter(id__in=ids.values()).exclude(province_id=F("id")).update(province_id=F("id"))

    new_wards = _upsert(
        [
            row(w, Scheme.CURRENT, Level.COMMUNE, new_prov[w.province_code.value], new_prov[w.province_code.value])
            for w in vp.Ward.iter_all()
        ]
    )
    districts = list(lg.District.iter_all())
    old_dist = _upsert(
        [
            row(d, Scheme.LEGACY, Level.DISTRICT, old_prov[d.province_code.value], old_prov[d.province_code.value])
            for d in districts
        ]
    )
    district_province = {d.code.value: old_prov[d.province_code.value] for d in districts}
    old_wards = _upsert(
        [
            row(
                w,
                Scheme.LEGACY,
                Level.COMMUNE,
                old_dist[w.district_code.value],
                district_province[w.district_code.value],
            )
            for w in lg.Ward.iter_all()
        ]
    )

    pairs: set[tuple[int, int]] = set()
    for province in vp.Province.iter_all():
        for source in province.get_legacy_sources():
            pairs.add((old_prov[source.code.value], new_prov[province.code.value]))
    for ward in vp.Ward.iter_all():
        for source in ward.get_legacy_sources():
            if source.code.value in old_wards:
                pairs.add((old_wards[source.code.value], new_wards[ward.code.value]))
    LocalityMapping.objects.bulk_create(
        [LocalityMapping(legacy_id=a, current_id=b) for a, b in sorted(pairs)],
        ignore_conflicts=True,
        batch_size=5000,
    )
    return locality_counts()


def locality_counts() -> dict[tuple[str, str], int]:
    rows = Locality.objects.values("scheme", "level").annotate(n=Count("id"))
    return {(r["scheme"], r["level"]): r["n"] for r in rows}


def localities_are_loaded() -> bool:
    counts = locality_counts()
    return all(counts.get(key, 0) == n for key, n in EXPECTED_COUNTS.items()) and LocalityMapping.objects.exists()


def locality_get(*, scheme: str, level: str, code: int) -> Locality:
    return Locality.objects.get(scheme=scheme, level=level, code=code)


def locality_search(*, query: str, scheme: str | None = Scheme.CURRENT, level: str | None = None) -> QuerySet[Locality]:
    """Find localities by name, with or without diacritics ("ha tinh" finds Hà Tĩnh)."""
    qs = Locality.objects.select_related("province")
    if scheme:
        qs = qs.filter(scheme=scheme)
    if level:
        qs = qs.filter(level=level)
    phrase = ascii_fold(query)
    if phrase:
        # The phrase must start at a word: "ha tinh" finds "tinh ha tinh", not "thanh hoa";
        # the last word may be partial while someone types ("ha ti").
        qs = qs.filter(name_ascii__regex=rf"(^| ){re.escape(phrase)}")
    return qs.order_by("level", "name_ascii")


def locality_successors(locality: Locality) -> QuerySet[Locality]:
    """The 2025 units a legacy unit became (a 2025 unit maps to itself)."""
    if locality.scheme == Scheme.CURRENT:
        return Locality.objects.filter(pk=locality.pk)
    return Locality.objects.filter(mappings_in__legacy=locality).distinct()
