"""Import of the agency's card-issue list (D10a-TS shape, CSV or XLSX).

Each row is matched to one listed or submitted card by personal ID or social insurance code.
A row with a card code and validity enrols the card; a row with a rejection reason rejects it
and returns its money to the pool. Unmatched, ambiguous and bad rows are reported; good rows
are kept. Re-importing the same list changes nothing (rows already applied count as unchanged).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Q

from beneficiaries.localities import ascii_fold
from config.exceptions import ApplicationError

from ..card_models import Card, CardStatus
from ..services.cards import card_transition
from .batches import card_reject_refund
from .models import CardListImport

# folded header → field
HEADERS = {
    "ho va ten": "name",
    "ho ten": "name",
    "ma so bhxh": "si_code",
    "ma bhxh": "si_code",
    "so cccd/ddcn": "personal_id",
    "so cccd": "personal_id",
    "cccd": "personal_id",
    "so dinh danh ca nhan": "personal_id",
    "ngay sinh": "date_of_birth",
    "ma the": "card_code",
    "ma the bhyt": "card_code",
    "noi kcb ban dau": "clinic",
    "tu ngay": "valid_from",
    "gia tri tu ngay": "valid_from",
    "den ngay": "valid_to",
    "gia tri den ngay": "valid_to",
    "loai": "section",
    "ly do tu choi": "rejection_reason",
    "ghi chu": "note",
}
D10A_HEADERS = [
    "STT",
    "Họ và tên",
    "Mã số BHXH",
    "Số CCCD/ĐDCN",
    "Ngày sinh",
    "Mã thẻ",
    "Nơi KCB ban đầu",
    "Từ ngày",
    "Đến ngày",
    "Loại",
    "Lý do từ chối",
]
OPEN = [CardStatus.LISTED, CardStatus.SUBMITTED]
DONE = [CardStatus.ENROLLED, CardStatus.ACTIVE, CardStatus.EXPIRING, CardStatus.EXPIRED, CardStatus.RENEWED]


def _date(value) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise ValueError(f"not a date: {text!r}")


def read_rows(content: bytes, file_name: str) -> list[dict]:
    """Rows as dicts keyed by field name; unknown columns are ignored."""
    from config.uploads import read_table  # clear errors for empty, non-UTF-8, broken files (issue 8)

    raw = read_table(content, file_name)
    if not raw:
        raise ApplicationError("The card list is empty.", code="cardlist_empty")
    fields = [HEADERS.get(ascii_fold(str(h or "")).rstrip(":")) for h in raw[0]]
    if "card_code" not in fields or not ({"personal_id", "si_code"} & set(fields)):
        raise ApplicationError(
            "The card list needs a card code column and a personal ID or social insurance code column.",
            code="cardlist_headers",
        )
    rows = []
    for values in raw[1:]:
        if not any(v not in (None, "") for v in values):
            continue
        row = {}
        for field, value in zip(fields, values, strict=False):
            if field:
                row[field] = value.strip() if isinstance(value, str) else value
        rows.append(row)
    if not rows:  # a header alone would store an empty import (issue 8)
        raise ApplicationError("The card list has a header but no rows.", code="cardlist_empty")
    return rows


def _apply_row(row: dict, by) -> tuple[str, str, int | None]:
    """→ (outcome, message, card id)."""
    pid = str(row.get("personal_id") or "").strip()
    si = str(row.get("si_code") or "").strip()
    code = str(row.get("card_code") or "").strip()
    reason = str(row.get("rejection_reason") or "").strip()
    if not pid and not si:
        return "bad", "no personal ID or social insurance code", None
    try:
        valid_from, valid_to = _date(row.get("valid_from")), _date(row.get("valid_to"))
    except ValueError as exc:
        return "bad", str(exc), None
    if not reason:
        if not code or not valid_from or not valid_to:
            return "bad", "a card row needs a card code, valid from and valid to", None
        if valid_to < valid_from:
            return "bad", "valid to is before valid from", None
    who = Q()
    if pid:
        who |= Q(member__personal_id=pid)
    if si:
        who |= Q(member__si_code=si)
    candidates = list(Card.objects.filter(who, status__in=OPEN).values_list("pk", "member_id"))
    if not candidates:
        # Already applied by an earlier import of the same list?
        if reason and Card.objects.filter(who, status=CardStatus.REJECTED, rejection_reason=reason).exists():
            return "unchanged", "already rejected", None
        done = Card.objects.filter(who, status__in=DONE, card_code=code, valid_from=valid_from).first()
        if done:
            return "unchanged", "already enrolled", done.pk
        return "unmatched", "no listed or submitted card for this person", None
    if len(candidates) > 1:
        return "ambiguous", f"{len(candidates)} open cards match this row", None
    card_id = candidates[0][0]
    card = Card.objects.get(pk=card_id)
    if card.status == CardStatus.LISTED:
        card_transition(card_id=card_id, to=CardStatus.SUBMITTED, by=by, reason="on the agency's card list")
    if reason:
        card = card_transition(
            card_id=card_id, to=CardStatus.REJECTED, by=by, reason=reason[:500], rejection_reason=reason
        )
        card_reject_refund(card=card)
        return "rejected", reason, card_id
    previous = (
        Card.objects.filter(
            member_id=card.member_id,
            product=card.product,
            status__in=[CardStatus.ACTIVE, CardStatus.EXPIRING, CardStatus.EXPIRED],
            valid_to__gte=valid_from - timedelta(days=92),
            valid_from__lt=valid_from,
        )
        .order_by("-valid_to")
        .first()
    )
    extra = {"renewal_of": previous} if previous and card.renewal_of_id is None else {}
    # Locked before the move, so only the import that enrols the card counts its months of
    # voluntary-SI support (a concurrent or repeated import finds it enrolled already).
    was = Card.objects.select_for_update().values_list("status", flat=True).get(pk=card_id)
    card = card_transition(
        card_id=card_id,
        to=CardStatus.ENROLLED,
        by=by,
        reason="agency card list",
        card_code=code,
        valid_from=valid_from,
        valid_to=valid_to,
        **extra,
    )
    if was != CardStatus.ENROLLED:
        from .vsi_support import vsi_support_months_record

        vsi_support_months_record(card=card)
    if previous:
        card_transition(card_id=previous.pk, to=CardStatus.RENEWED, by=by, reason=f"renewed by card {card_id}")
    return "enrolled", "", card_id


def cardlist_import(*, content: bytes, file_name: str, by=None) -> CardListImport:
    rows = read_rows(content, file_name)
    job = CardListImport(file_name=file_name[:255], sha256=hashlib.sha256(content).hexdigest(), uploaded_by=by)
    report = []
    counts = dict.fromkeys(["enrolled", "rejected", "unchanged", "unmatched", "ambiguous", "bad"], 0)
    with transaction.atomic():
        for n, row in enumerate(rows, 2):  # row 1 is the header
            try:
                with transaction.atomic():
                    outcome, message, card_id = _apply_row(row, by)
            except ApplicationError as exc:
                outcome, message, card_id = "bad", str(exc), None
            counts[outcome] += 1
            if outcome != "enrolled":
                report.append({"row": n, "outcome": outcome, "message": message, "card": card_id})
        for k, v in counts.items():
            setattr(job, k, v)
        job.report = report
        job.save()
        if counts["enrolled"] or counts["rejected"]:
            from ..tasks import enrollment_rollups_recompute

            transaction.on_commit(enrollment_rollups_recompute.delay)
    return job


def d10a_rows_for_cards(cards, *, reject: dict[int, str] | None = None) -> list[list]:
    """Rows the agency would return for `cards` (demo and tests): a card code and a 12-month
    validity from the card's requested start, or the rejection reason."""
    reject = reject or {}
    rows = []
    for n, c in enumerate(cards, 1):
        m = c.member
        start = c.period_start
        end_year, end_month = divmod(start.month - 1 + c.months, 12)
        end = date(start.year + end_year, end_month + 1, 1).toordinal() - 1
        if c.pk in reject:
            rows.append([n, m.full_name, m.si_code, m.personal_id, m.date_of_birth.strftime("%d/%m/%Y")] + [""] * 5)
            rows[-1].append(reject[c.pk])
            continue
        code = f"HN{c.locality.province.code:02d}{(m.si_code or m.personal_id[-10:]).rjust(10, '0')}"
        rows.append(
            [
                n,
                m.full_name,
                m.si_code,
                m.personal_id,
                m.date_of_birth.strftime("%d/%m/%Y"),
                code,
                "Trạm y tế xã",
                start.strftime("%d/%m/%Y"),
                date.fromordinal(end).strftime("%d/%m/%Y"),
                "Mới",
                "",
            ]
        )
    return rows
