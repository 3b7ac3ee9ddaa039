"""A bank statement file as finance uploads it (CSV with the columns of FACTS §7), for tests."""

import csv
import io

HEADER = ["date", "amount", "description", "bank reference", "counter-account"]


def csv_statement(rows) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buf.getvalue().encode()
