"""Concurrent workers on separate connections (runs before the other matching tests: the
session's last test must not be a transactional one, see tests/conftest.py)."""

import threading

from django.db import connection

from sponsorship.card_models import Card
from sponsorship.matching import services
from sponsorship.matching.models import Allocation
from sponsorship.services.ledger import check_invariants

from .conftest import PERIOD, communes, make_gift, make_household


def test_concurrent_workers_allocate_each_gift_and_card_once(transactional_db):
    from beneficiaries.models import Level, Locality
    from beneficiaries.pricing_seed import seed_pricing

    seed_pricing()  # an earlier transactional test may have flushed the seeded prices
    from donors.models import User

    ha_tinh = Locality.objects.get(scheme="2025", level=Level.PROVINCE, code=42)
    ha_noi = Locality.objects.get(scheme="2025", level=Level.PROVINCE, code=1)
    donor = User.objects.create_user("conc@example.test", "pw-Sufficiently-Long-1", role="donor")
    share = 379_080
    for province in (ha_tinh, ha_noi):
        for commune in communes(province):
            for _ in range(3):
                make_household(commune)
    for _ in range(10):  # ten whole shares of unrestricted money for twelve waiting members
        make_gift(donor, share)
    errors = []

    def worker(order):
        try:
            for _ in range(3):
                for p in order:
                    services.match_province(province_id=p.pk, period_start=PERIOD)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(o,)) for o in ([ha_tinh, ha_noi], [ha_noi, ha_tinh]) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Card.objects.count() <= 10 and check_invariants() == []
    # A shard or gift busy in another worker is skipped, not waited for: the next beat tick
    # (here one serial pass) finishes the work.
    for p in (ha_tinh, ha_noi):
        services.match_province(province_id=p.pk, period_start=PERIOD)
    assert Card.objects.count() == 10  # the same total a single serial run gives
    assert Allocation.objects.count() == 10
    assert Allocation.objects.values("donation").distinct().count() == 10
    assert check_invariants() == []
