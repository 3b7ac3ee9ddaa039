from beneficiaries.localities import (
    ascii_fold,
    localities_load,
    locality_counts,
    locality_get,
    locality_search,
    locality_successors,
)
from beneficiaries.models import Level, Locality, LocalityMapping, Scheme


def test_both_schemes_have_the_published_unit_counts(db):
    counts = locality_counts()
    assert counts[(Scheme.CURRENT, Level.PROVINCE)] == 34
    assert counts[(Scheme.CURRENT, Level.COMMUNE)] == 3321
    assert counts[(Scheme.LEGACY, Level.PROVINCE)] == 63
    assert counts[(Scheme.LEGACY, Level.DISTRICT)] == 696
    assert counts[(Scheme.LEGACY, Level.COMMUNE)] == 10051
    assert (Scheme.CURRENT, Level.DISTRICT) not in counts


def test_loading_twice_changes_nothing(db):
    before_ids = set(Locality.objects.values_list("id", flat=True))
    before_mappings = LocalityMapping.objects.count()
    localities_load()
    assert set(Locality.objects.values_list("id", flat=True)) == before_ids
    assert LocalityMapping.objects.count() == before_mappings


def test_the_same_code_means_different_units_in_each_scheme(db):
    # FACTS §6: ward 4 is Trúc Bạch in the legacy list and Ba Đình in 2025.
    assert locality_get(scheme=Scheme.LEGACY, level=Level.COMMUNE, code=4).name == "Phường Trúc Bạch"
    assert locality_get(scheme=Scheme.CURRENT, level=Level.COMMUNE, code=4).name == "Phường Ba Đình"


def test_search_without_diacritics_finds_ha_tinh(db):
    found = list(locality_search(query="ha tinh", level=Level.PROVINCE))
    assert [p.name for p in found] == ["Tỉnh Hà Tĩnh"]
    assert ascii_fold("Đồng Tháp") == "dong thap"


def test_every_commune_knows_its_province(db):
    assert not Locality.objects.filter(level=Level.COMMUNE, province__isnull=True).exists()
    ba_dinh = locality_get(scheme=Scheme.CURRENT, level=Level.COMMUNE, code=4)
    assert ba_dinh.province.name == "Thành phố Hà Nội"
    assert ba_dinh.parent_id == ba_dinh.province_id


def test_legacy_units_map_to_their_2025_successors(db):
    truc_bach = locality_get(scheme=Scheme.LEGACY, level=Level.COMMUNE, code=4)
    assert "Phường Ba Đình" in {u.name for u in locality_successors(truc_bach)}
    old_ha_tay = Locality.objects.get(scheme=Scheme.LEGACY, level=Level.PROVINCE, name_ascii__contains="ha noi")
    assert [u.name for u in locality_successors(old_ha_tay)] == ["Thành phố Hà Nội"]
    # Many-to-many: some legacy wards were split between several new ones.
    from django.db.models import Count

    split = LocalityMapping.objects.values("legacy").annotate(n=Count("current")).filter(n__gt=1)
    assert split.exists()


def test_locality_search_api_is_public_and_scheme_aware(client, db):
    response = client.get("/api/localities/", {"q": "ba dinh", "level": "commune"})
    assert response.status_code == 200
    names = [row["name"] for row in response.json()["results"]]
    assert "Phường Ba Đình" in names
    legacy = client.get("/api/localities/", {"q": "truc bach", "scheme": "legacy"}).json()["results"]
    assert [row["name"] for row in legacy] == ["Phường Trúc Bạch"]
