"""Reading an uploaded table (CSV or XLSX) into rows, with one clear error for each way a file
can be unreadable: empty, not UTF-8, not text, a broken workbook, malformed CSV, too large.

The bank-statement and agency card-list importers read through here; before, a file in the
wrong encoding or a truncated workbook escaped as UnicodeDecodeError / BadZipFile (a 500).
The registry importer streams large files itself (beneficiaries/services/imports.py) with the
same checks."""

from __future__ import annotations

import csv
import io
import zipfile

from django.conf import settings
from django.utils.translation import gettext as _

from config.exceptions import ApplicationError


class UploadError(ApplicationError):
    pass


def read_table(content: bytes, name: str) -> list[list]:
    """Rows (lists of cells) of the first sheet or the CSV. Raises UploadError."""
    limit = getattr(settings, "CHUNGTAY_UPLOAD_MAX_BYTES", 50 * 2**20)
    if len(content) > limit:
        raise UploadError(_("The file is too large (at most %(mb)s MB).") % {"mb": limit // 2**20}, code="too_large")
    if not content.strip():
        raise UploadError(_("The file is empty."), code="empty")
    if name.lower().endswith(".xlsx"):
        return _xlsx(content)
    return _csv(content)


def _xlsx(content: bytes) -> list[list]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        try:
            return [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
        finally:
            wb.close()
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, IndexError, EOFError, TypeError) as exc:
        raise UploadError(_("This is not a readable XLSX workbook."), code="format") from exc
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on damaged XML
        raise UploadError(_("This is not a readable XLSX workbook."), code="format") from exc


def _csv(content: bytes) -> list[list]:
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16, as Excel's "Unicode text" saves
        raise UploadError(
            _("The file is not UTF-8 encoded. Save it as “CSV UTF-8” and upload it again."), code="encoding"
        )
    if b"\x00" in content[:4096]:
        raise UploadError(_("This is not a CSV text file."), code="encoding")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError(
            _("The file is not UTF-8 encoded. Save it as “CSV UTF-8” and upload it again."), code="encoding"
        ) from exc
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise UploadError(_("The CSV file is malformed: %(e)s") % {"e": exc}, code="format") from exc
