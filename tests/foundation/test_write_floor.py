"""The benchmarks' write floor (sponsorship/benchmarks/floor.py): it writes the chosen rows
again into empty copies of their tables, with the tables' own constraints, and keeps nothing."""

from django.db import connection

from beneficiaries.models import Household, Locality
from sponsorship.benchmarks.floor import write_floor


def _tables_like(prefix: str) -> list[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class WHERE relname LIKE %s", [prefix + "%"])
        return [r for (r,) in cur.fetchall()]


def test_it_writes_the_chosen_rows_and_keeps_nothing(ha_tinh):
    commune = Locality.objects.filter(province=ha_tinh, level="commune").first()
    for i in range(5):
        Household.objects.create(locality=commune, external_ref=f"FLOOR-{i}", address="x")
    Household.objects.create(locality=commune, external_ref="OTHER-1", address="x")

    floor = write_floor([("beneficiaries_household", "external_ref LIKE %(ref)s", {"ref": "FLOOR-%"})], repeat=2)

    assert floor["rows"] == {"beneficiaries_household": 5}
    assert len(floor["samples"]) == 2 and floor["seconds"] > 0
    assert _tables_like("bench_floor_") == []
    assert Household.objects.count() == 6


def test_the_copies_carry_the_tables_indexes(ha_tinh):
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_index WHERE indrelid = 'sponsorship_card'::regclass")
        real = cur.fetchone()[0]
    floor = write_floor([("sponsorship_card", "true", None)], repeat=1)
    assert real >= 5 and floor["indexes"] == {"sponsorship_card": real}
