"""Enrollment demo (idempotent): the article's 2022 targets, funded cards for approved demo
members of Hà Nội and Hà Tĩnh paid by one demo gift, agency batches, Hà Tĩnh's card list
already imported, and Hà Nội's card list (D10a-TS) saved under MEDIA_ROOT, ready to import
from /enrollment/batches/. The cards are created here directly because matching (issue 5) is
not on this branch."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

from django.conf import settings
from django.db import transaction

from beneficiaries.models import Member, MemberStatus
from donors.models import User

DEMO_REFERENCE = "CTENROLL22"
FUND = "demo:enrollment-2022"
PERIOD = date(2022, 11, 1)
SHARE = 379_080


def demo_cardlist_path() -> Path:
    return Path(settings.MEDIA_ROOT) / "enrollment" / "D10a-TS_demo_ha_noi.csv"


def _csv(rows) -> bytes:
    from .cardlist import D10A_HEADERS

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(D10A_HEADERS)
    writer.writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def demo_enrollment_seed() -> dict:
    from ..card_models import Card
    from ..matching.models import Allocation, MatchingRun, RunStatus
    from ..matching.services import active_rule
    from ..models import Donation
    from ..services.ledger import credit, debit, ledger_post
    from .batches import batch_create, batch_mark_paid, batch_submit
    from .cardlist import cardlist_import, d10a_rows_for_cards
    from .rollups import rollups_recompute
    from .targets import seed_targets

    seed_targets(2022)
    donor = User.objects.filter(email="donor@chungtay.test").first()
    if donor is None:
        return {"skipped": "no demo donor"}
    if Donation.objects.filter(reference=DEMO_REFERENCE).exists():
        return {"cards": Card.objects.filter(allocations__donation__reference=DEMO_REFERENCE).count()}
    members = list(
        Member.objects.filter(household__external_ref__startswith="DEMO-", status=MemberStatus.APPROVED)
        .exclude(cards__isnull=False)
        .select_related("household", "locality__province")
        .order_by("locality__province__code", "locality_id", "pk")
    )
    if not members:
        return {"skipped": "no approved demo members"}
    with transaction.atomic():
        gift = Donation.objects.create(
            donor=donor,
            method="bank",
            amount_vnd=SHARE * len(members),
            amount_received_vnd=SHARE * len(members),
            appearance="named",
            reference=DEMO_REFERENCE,
            fund_key=FUND,
            status="succeeded",
            campaign="Chung tay 2022",
        )
        total = SHARE * len(members)
        ledger_post(
            key=f"demo:enrollment:paid:{gift.pk}",
            entries=[debit("bank_clearing", total), credit("donor_funds", total, FUND)],
            donation=gift,
        )
        # The demo's cards are paid like the matcher pays them: allocations of one (recorded) run.
        rule = active_rule()
        run = MatchingRun.objects.create(
            rule=rule,
            status=RunStatus.DONE,
            money_in_vnd=total,
            money_allocated_vnd=total,
            cards_funded=len(members),
            allocations=len(members),
        )
        for m in members:
            card = Card.objects.create(
                member=m,
                household=m.household,
                locality=m.locality,
                product="hi_household",
                group="HN",
                months=12,
                period_start=PERIOD,
                premium_vnd=1_263_600,
                state_share_vnd=884_520,
                donor_share_vnd=SHARE,
            )
            Allocation.objects.create(
                run=run, donation=gift, card=card, fund=FUND, amount_vnd=SHARE, score=0, rule_version=rule.version
            )
        # Like the matcher's posting, not attributed to the gift: a gift's own donor_funds
        # postings are what it brought (unmatch.gift_cleared_money).
        ledger_post(
            key=f"demo:enrollment:alloc:{gift.pk}",
            entries=[debit("donor_funds", total, FUND), credit("allocated_to_cards", total, FUND)],
        )
    by_commune: dict[int, list] = {}
    for card in Card.objects.filter(allocations__donation=gift).select_related("locality__province", "member"):
        by_commune.setdefault(card.locality_id, []).append(card)
    ha_noi_cards, batches = [], 0
    for cards in by_commune.values():
        commune = cards[0].locality
        batch = batch_create(locality=commune, product="hi_household", period=PERIOD)
        batches += 1
        batch_submit(batch_id=batch.pk)
        if commune.province.code == 1:
            ha_noi_cards += cards
        else:
            rows = d10a_rows_for_cards(cards)  # rejections are shown by the tests, not the demo ledger
            cardlist_import(content=_csv(rows), file_name=f"D10a-TS_{commune.code}.csv")
            batch_mark_paid(batch_id=batch.pk)
    path = demo_cardlist_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_csv(d10a_rows_for_cards(ha_noi_cards)))
    rollups_recompute()
    return {"cards": sum(len(c) for c in by_commune.values()), "batches": batches, "card_list": str(path)}
