import io

import openpyxl
import pytest

from config.exceptions import ApplicationError
from sponsorship.models import Account, BankStatementLine, DonationStatus, LineStatus, Method
from sponsorship.services import bank, ledger
from sponsorship.services.donations import donation_create
from tests.bank_statements import csv_statement

pytestmark = pytest.mark.django_db


def pledge(donor, amount=2_000_000):
    return donation_create(donor=donor, method=Method.BANK, amount_vnd=amount)[0]


def test_a_pledge_gets_a_short_uppercase_ascii_reference_and_a_vietqr_code(donor_an, settings):
    settings.VIETQR_BANK_BIN = "970415"
    settings.VIETQR_ACCOUNT_NUMBER = "113366668888"
    gift = pledge(donor_an)
    assert gift.reference.isascii() and gift.reference.isupper() and len(gift.reference) <= 25
    payload = bank.vietqr_payload(gift)
    assert "A000000727" in payload and "970415" in payload and "113366668888" in payload
    assert f"08{len(gift.reference):02d}{gift.reference}" in payload
    assert "5802VN" in payload and "5303704" in payload
    assert gift.status == DonationStatus.PENDING


def test_the_vietqr_builder_reproduces_the_reference_payload():
    from vietnam_qr_pay import QRPay

    qr = QRPay.init_viet_qr(bank_bin="970415", bank_number="0011001932418", amount="120000", purpose="ung ho lu lut")
    assert qr.build() == (
        "00020101021238570010A00000072701270006970415011300110019324180208QRIBFTTA530370454061200005802VN"
        "62170813ung ho lu lut6304C15C"
    )


def test_a_statement_with_noisy_descriptions_is_matched_by_reference_and_amount(donor_an, donor_binh, finance_giang):
    a, b, c = pledge(donor_an), pledge(donor_binh, 1_000_000), pledge(donor_an, 500_000)
    noisy_b = "-".join([b.reference[:4], b.reference[4:]])
    content = csv_statement(
        [
            ("01/11/2026", "2.000.000", f"MBVCB.123456.{a.reference}.ung ho.CT tu 0123", "FT001", "0123456789"),
            ("01/11/2026", "1,000,000", f"IBFT {noisy_b} chung tay bhyt", "FT002", ""),
            ("02/11/2026", "200000", f"NGUYEN VAN AN CHUYEN TIEN {c.reference.lower()}", "FT003", ""),
            ("02/11/2026", "50000", "chuyen tien khong ghi noi dung", "FT004", ""),
            ("02/11/2026", "-30000", "phi dich vu", "FT005", ""),
        ]
    )
    statement = bank.statement_import(name="vcb-nov.csv", content=content, by=finance_giang)
    counts = bank.match_lines(statement_id=statement.pk)
    assert counts == {"matched": 3, "unmatched": 1}
    for g in (a, b, c):
        g.refresh_from_db()
    assert (a.status, b.status, c.status) == (
        DonationStatus.SUCCEEDED,
        DonationStatus.SUCCEEDED,
        DonationStatus.PARTIALLY_PAID,
    )
    partial = BankStatementLine.objects.get(bank_reference="FT003")
    assert "partial payment" in partial.match_note
    assert ledger.balance(Account.BANK_CLEARING) == 3_200_000
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 3_200_000
    assert BankStatementLine.objects.get(status=LineStatus.UNMATCHED).bank_reference == "FT004"


def test_uploading_an_overlapping_statement_never_counts_a_line_twice(donor_an, finance_giang):
    a = pledge(donor_an)
    first = [("01/11/2026", "1000000", f"CK {a.reference}", "FT1", "")]
    second = first + [("03/11/2026", "1000000", f"CK {a.reference} lan 2", "FT2", "")]
    bank.statement_import(name="week1.csv", content=csv_statement(first), by=finance_giang)
    bank.match_lines()
    again = bank.statement_import(name="week1-2.csv", content=csv_statement(second), by=finance_giang)
    assert again.lines_new == 1
    bank.match_lines()
    a.refresh_from_db()
    assert a.amount_received_vnd == 2_000_000
    assert a.status == DonationStatus.SUCCEEDED
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 2_000_000


def test_an_over_payment_is_recorded_explicitly(donor_an, finance_giang):
    a = pledge(donor_an, 1_000_000)
    bank.statement_import(
        name="s.csv", content=csv_statement([("01/11/2026", "1500000", a.reference, "FT9", "")]), by=finance_giang
    )
    bank.match_lines()
    line = BankStatementLine.objects.get()
    assert "over-payment: 500000" in line.match_note
    a.refresh_from_db()
    assert a.amount_received_vnd == 1_500_000


def test_finance_matches_a_queued_line_by_hand(donor_an, finance_giang):
    a = pledge(donor_an, 300_000)
    bank.statement_import(
        name="s.csv", content=csv_statement([("01/11/2026", "300000", "ung ho", "FT7", "")]), by=finance_giang
    )
    bank.match_lines()
    line = BankStatementLine.objects.get()
    assert line.status == LineStatus.UNMATCHED
    bank.match_line_manually(line=line, reference=a.reference.lower(), by=finance_giang)
    line.refresh_from_db()
    assert line.status == LineStatus.MATCHED and line.matched_by == finance_giang
    with pytest.raises(ApplicationError):
        bank.match_line_manually(line=line, reference=a.reference, by=finance_giang)
    assert ledger.natural_balance(Account.DONOR_FUNDS) == 300_000


def test_a_donor_cannot_upload_a_statement(donor_an):
    with pytest.raises(ApplicationError, match="finance"):
        bank.statement_import(name="s.csv", content=csv_statement([]), by=donor_an)


def test_an_xlsx_statement_is_read_like_a_csv(donor_an, finance_giang):
    import datetime as dt

    a = pledge(donor_an, 400_000)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Date", "Amount", "Description", "Bank reference", "Counter-account"])
    ws.append([dt.date(2026, 11, 5), 400000, f"TRANSFER {a.reference} THANKS", "X1", "999"])
    buf = io.BytesIO()
    wb.save(buf)
    bank.statement_import(name="s.xlsx", content=buf.getvalue(), by=finance_giang)
    bank.match_lines()
    a.refresh_from_db()
    assert a.status == DonationStatus.SUCCEEDED


def test_a_statement_missing_columns_is_refused_clearly(finance_giang):
    with pytest.raises(ApplicationError, match="amount"):
        bank.statement_import(name="s.csv", content=b"date,description\n01/11/2026,x\n", by=finance_giang)
