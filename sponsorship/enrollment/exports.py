"""D03-TS-shaped (HI) and D05-TS-shaped (voluntary SI) hand-off lists, XLSX and CSV, with
Vietnamese headers. Cells that a spreadsheet would read as a formula are neutralised."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook

from beneficiaries.models import PremiumSchedule

from .models import AgencyBatch

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """'=HYPERLINK(…)' → "'=HYPERLINK(…)": text starting with = + - @ (or tab/CR) is quoted."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


D03_HEADERS = [
    "STT",
    "Họ và tên",
    "Mã số BHXH",
    "Số CCCD/ĐDCN",
    "Ngày sinh",
    "Giới tính",
    "Địa chỉ",
    "Nhóm đối tượng",
    "Mức lương cơ sở",
    "NSNN hỗ trợ",
    "Nguồn khác (tổ chức, cá nhân)",
    "Số tháng",
    "Từ ngày",
    "Số tiền",
    "Số, ngày biên lai",
    "Ghi chú",
]
D05_HEADERS = [
    "STT",
    "Họ và tên",
    "Mã số BHXH",
    "Số CCCD/ĐDCN",
    "Ngày sinh",
    "Giới tính",
    "Mức thu nhập làm căn cứ đóng",
    "Phương thức đóng (số tháng)",
    "Từ tháng",
    "Người tham gia đóng",
    "NSNN hỗ trợ",
    "Nguồn khác (tổ chức, cá nhân)",
    "Tổng số tiền",
    "Số, ngày biên lai",
    "Ghi chú",
]
SEX_VI = {"male": "Nam", "female": "Nữ"}


def _base_salary(on) -> int | str:
    schedule = PremiumSchedule.objects.filter(valid_from__lte=on).order_by("-valid_from").first()
    return schedule.base_salary_vnd if schedule else ""


def batch_rows(batch: AgencyBatch) -> tuple[list[str], list[list]]:
    items = (
        batch.items.filter(is_live=True)
        .select_related("card__member", "card__household")
        .order_by("card__member__full_name", "card_id")
    )
    receipt = f"{batch.reference}/{batch.created_at:%d/%m/%Y}"
    rows = []
    if batch.product == "si_voluntary":
        for n, item in enumerate(items, 1):
            c, m = item.card, item.card.member
            participant = c.premium_vnd - c.state_share_vnd - c.province_share_vnd - c.donor_share_vnd
            rows.append(
                [
                    n,
                    m.full_name,
                    m.si_code,
                    m.personal_id,
                    m.date_of_birth.strftime("%d/%m/%Y"),
                    SEX_VI.get(m.sex, m.sex),
                    "",
                    c.months,
                    c.period_start.strftime("%m/%Y"),
                    participant,
                    c.state_share_vnd + c.province_share_vnd,
                    c.donor_share_vnd,
                    c.premium_vnd,
                    receipt,
                    "",
                ]
            )
        return D05_HEADERS, rows
    base = _base_salary(batch.period)
    for n, item in enumerate(items, 1):
        c, m = item.card, item.card.member
        rows.append(
            [
                n,
                m.full_name,
                m.si_code,
                m.personal_id,
                m.date_of_birth.strftime("%d/%m/%Y"),
                SEX_VI.get(m.sex, m.sex),
                c.household.address,
                c.group,
                base,
                c.state_share_vnd + c.province_share_vnd,
                c.donor_share_vnd,
                c.months,
                c.period_start.strftime("%d/%m/%Y"),
                c.premium_vnd,
                receipt,
                "",
            ]
        )
    return D03_HEADERS, rows


def form_name(batch: AgencyBatch) -> str:
    return "D05-TS" if batch.product == "si_voluntary" else "D03-TS"


def to_csv(headers, rows) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(headers)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel opens UTF-8 Vietnamese correctly


def to_xlsx(headers, rows, *, title: str = "Sheet") -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title[:31])
    ws.append(headers)
    for row in rows:
        ws.append([safe_cell(v) for v in row])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def batch_export(batch: AgencyBatch, fmt: str) -> tuple[bytes, str, str]:
    """(content, file name, content type) of the batch's hand-off list."""
    headers, rows = batch_rows(batch)
    name = f"{form_name(batch)}_{batch.reference}"
    if fmt == "xlsx":
        return (
            to_xlsx(headers, rows, title=form_name(batch)),
            f"{name}.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    return to_csv(headers, rows), f"{name}.csv", "text/csv; charset=utf-8"
