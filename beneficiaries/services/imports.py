"""Bulk import of commune lists (CSV or XLSX, Vietnamese or English headers).

Everything happens in PostgreSQL, set-based, in one transaction (a file-level error at any
point leaves nothing half-written):

1. Load: the CSV file is COPYed as it is into a temporary staging table (PostgreSQL's own CSV
   reader; Python's reader only for files it refuses, and for XLSX via openpyxl read-only).
2. Validate: one statement applies every rule of a row (`_validation_sql`; the same rules in
   Python are `validate_row`, and a property-based test keeps the two in agreement) and
   writes (row, field, reason) for each bad row.
3. Write: new households (ids drawn from the sequence), then the new members in batches in
   household order (INSERT … SELECT; re-importing the same file changes nothing, keyed on
   the personal ID), progress published after each batch and each validation chunk;
   near-duplicates (same folded name + date of birth + commune) are flagged for a reviewer.
   No history row per member: the first entry of an imported member's history is derived
   from its row (`Member.import_job`, `selectors.member_history`). The foreign keys of the
   written rows are verified set-based before commit (`config/bulk_fk.py`), not per row.

A big CSV is read on two connections: this one checks the first fifth and writes it while a
second connection checks the rest and hands it over in pieces (`_SecondHalf`); this one then
writes the pieces in turn, to each of which the earlier parts are already registry
(`_write_part`). The outcome is one pass's, to the row numbers in the error file
(tests/beneficiaries/test_imports_parallel.py).

Set-based because a province sends lists of a million people.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import psycopg
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    DataError,
    IntegrityError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from config.bulk_fk import Reference, set_based_fk_checks
from config.exceptions import ApplicationError
from donors.models import User
from donors.scopes import is_nationwide, scope_localities

from ..identifiers import LEGACY_PROVINCE_CODES, personal_id_errors
from ..localities import ascii_fold
from ..models import (
    Household,
    ImportJob,
    ImportRowError,
    ImportStatus,
    Level,
    Locality,
    LocalityFreeze,
    Member,
    MemberStatus,
    PovertyClass,
    Relation,
    Scheme,
)
from .registry import INTAKE_ROLES

logger = logging.getLogger("beneficiaries.imports")

# New members per INSERT, and rows per validation statement (a progress update after each).
BATCH_ROWS = 100_000
VALIDATE_ROWS = 250_000
# Progress is published in rows' worth of work: checking a row is about 2/5 of its cost,
# writing it the rest (measured on the benchmark's million rows).
VALIDATION_SHARE = 0.4


def _work(total: int, validated: int, written: int = 0) -> int:
    """Rows done, as the page and the API show them: validation and writing both advance it."""
    return min(total, round(VALIDATION_SHARE * validated + (1 - VALIDATION_SHARE) * written))


@lru_cache(maxsize=4096)
def _key(text: str) -> str:
    """Header/value key: no diacritics, lower case, letters and digits only."""
    text = str(text).replace("đ", "d").replace("Đ", "D")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]", "", text.lower())


# field → accepted headers (compared with _key). Matches the agency's D03-TS columns.
COLUMNS: dict[str, list[str]] = {
    "full_name": ["Họ và tên", "Họ tên", "full name", "full_name", "name"],
    "date_of_birth": ["Ngày sinh", "Ngày, tháng, năm sinh", "Ngày tháng năm sinh", "date of birth", "dob"],
    "sex": ["Giới tính", "sex", "gender"],
    "personal_id": [
        "Số CCCD/Số định danh cá nhân",
        "Số định danh cá nhân",
        "Số CCCD",
        "CCCD",
        "Số CCCD/ĐDCN",
        "personal id",
        "personal_id",
    ],
    "si_code": ["Mã số BHXH", "Mã BHXH", "social insurance code", "si_code"],
    "ethnicity": ["Dân tộc", "ethnicity"],
    "relation": ["Quan hệ với chủ hộ", "Quan hệ", "relation", "relation to head"],
    "address": ["Địa chỉ", "address"],
    "phone": ["Số điện thoại", "Điện thoại", "phone"],
    "commune_code": ["Mã xã", "Mã đơn vị hành chính", "commune code", "commune_code"],
    "household_ref": ["Mã hộ", "Số hộ", "Mã hộ gia đình", "household number", "household_ref"],
    "poverty_class": ["Hộ nghèo/Hộ cận nghèo", "Phân loại hộ", "Diện hộ", "poverty class", "poverty_class"],
    "certificate_number": ["Số giấy chứng nhận", "Số GCN", "certificate number", "certificate_number"],
    "certificate_year": ["Năm chứng nhận", "Năm GCN", "certificate year", "certificate_year"],
    "is_student": ["Học sinh/Sinh viên", "HSSV", "student", "is_student"],
    "card_group": ["Mã nhóm thẻ", "Nhóm thẻ BHYT", "card group", "card_group"],
    "card_valid_until": ["Hạn thẻ BHYT", "Thẻ BHYT có giá trị đến", "card valid until", "card_valid_until"],
    "is_poor_commune": ["Xã nghèo", "poor commune", "is_poor_commune"],
    "is_ethnic_minority": ["Hộ dân tộc thiểu số", "ethnic minority", "is_ethnic_minority"],
    "is_island_commune": ["Xã đảo", "island commune", "is_island_commune"],
}
REQUIRED = ["full_name", "date_of_birth", "sex", "personal_id", "commune_code"]
HEADER_TO_FIELD = {_key(h): f for f, headers in COLUMNS.items() for h in headers}

SEX = {"nam": "male", "male": "male", "m": "male", "nu": "female", "female": "female", "f": "female"}
RELATION = {
    "chuho": Relation.HEAD,
    "head": Relation.HEAD,
    "vo": Relation.SPOUSE,
    "chong": Relation.SPOUSE,
    "spouse": Relation.SPOUSE,
    "con": Relation.CHILD,
    "child": Relation.CHILD,
    "bo": Relation.PARENT,
    "me": Relation.PARENT,
    "cha": Relation.PARENT,
    "parent": Relation.PARENT,
    "chau": Relation.GRANDCHILD,
    "grandchild": Relation.GRANDCHILD,
    "": Relation.OTHER,
    "khac": Relation.OTHER,
    "other": Relation.OTHER,
}
POVERTY = {
    "hongheo": PovertyClass.POOR,
    "ngheo": PovertyClass.POOR,
    "poor": PovertyClass.POOR,
    "hocanngheo": PovertyClass.NEAR_POOR,
    "canngheo": PovertyClass.NEAR_POOR,
    "nearpoor": PovertyClass.NEAR_POOR,
    "nonglamngunghiep": PovertyClass.AVERAGE_FARMING,
    "hononglamngunghiep": PovertyClass.AVERAGE_FARMING,
    "hononglamngunghiepcomucsongtrungbinh": PovertyClass.AVERAGE_FARMING,
    "averagefarming": PovertyClass.AVERAGE_FARMING,
    "": PovertyClass.NONE,
    "khong": PovertyClass.NONE,
    "none": PovertyClass.NONE,
}
TRUE = {"x", "1", "co", "yes", "true", "c", "y"}
FALSE = {"", "0", "khong", "no", "false", "k", "n"}

# Whitespace as Python's str.split()/str.strip() see it; the SQL uses the same set so that
# "Nguyễn\u00a0Văn" is squashed the same way on both sides.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)
# Combining marks that NFD produces for Latin (Vietnamese) text.
COMBINING_RE = "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
DATE_RE = r"^([0-9]+)([/.-])([0-9]+)\2([0-9]+)$"
FLAG_FIELDS = ("is_poor_commune", "is_ethnic_minority", "is_island_commune", "is_student")
# Fields whose value is only ever looked up by its key (`_key` drops whitespace anyway): the
# SQL need not trim them first (a trim with the Unicode whitespace set costs ≈ 0.2 µs a cell).
UNTRIMMED = frozenset({"sex", "relation", "poverty_class", *FLAG_FIELDS})
DATE_FIELDS = ("date_of_birth", "card_valid_until")
# The columns of import_val (besides flags and reasons) that the later steps read.
VAL_COLUMNS = (
    *("row_number", "is_new", "pid", "locality_id", "ref", "name", "dob", "sex_v", "si_code", "ethnicity"),
    *("relation_v", "card_group", "valid_until", "address", "phone", "poverty_v", "certificate_number", "year_v"),
)
# The order in which a row's errors are listed (one error per field at most).
ERROR_FIELDS = (
    "full_name",
    "date_of_birth",
    "sex",
    "personal_id",
    "commune_code",
    "si_code",
    "relation",
    "poverty_class",
    "certificate_year",
    *FLAG_FIELDS,
    "card_valid_until",
)
# Longest stored value of each text column (the model's max_length).
LIMITS = {
    "household_ref": 40,
    "address": 300,
    "phone": 20,
    "certificate_number": 40,
    "full_name": 200,
    "name_ascii": 200,
    "ethnicity": 60,
    "card_group": 4,
}


class ImportFileError(ApplicationError):
    """The file as a whole cannot be imported (nothing is written)."""


@dataclass
class RowError:
    row_number: int
    field: str
    reason: str


def _messages() -> dict[str, str]:
    """Every row-level reason, translated once per job; the SQL gets them as parameters."""
    return {
        "name_required": _("The full name is required."),
        "dob_range": _("The date of birth is out of range."),
        "not_a_date_v": _("Not a date (expected dd/mm/yyyy): %(v)s"),
        "sex": _("Sex must be Nam or Nữ."),
        "pid_digits": _("The personal ID must be exactly 12 digits."),
        "pid_province": _("The first three digits of the personal ID are not a province code."),
        "pid_century": _("The fourth digit of the personal ID must be 0 to 5 (century and sex)."),
        "pid_year": _("The date of birth (year %(dob)s) does not match the personal ID (year %(id)s)."),
        "pid_sex": _("The sex does not match the personal ID's fourth digit."),
        "pid_dup": _("The same personal ID is already on row %(row)s."),
        "commune_scope": _("You may not register people in this commune."),
        "commune_frozen": _("The list of this commune is frozen."),
        "commune_unknown": _("Unknown commune code (2025 list): %(v)s"),
        "si_code": _("The social insurance code must be 10 digits."),
        "relation": _("Unknown relation to the head of household."),
        "poverty": _("Poverty class must be nghèo, cận nghèo, nông lâm ngư nghiệp or empty."),
        "year": _("Not a year."),
        "flag": _("Expected x/có or empty."),
        "not_a_date": _("Not a date (expected dd/mm/yyyy)."),
    }


def _clean(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _parse_date(value: str) -> date | None:
    """dd/mm/yyyy (Vietnamese forms), dd-mm-yyyy, dd.mm.yyyy or ISO yyyy-mm-dd; None if not
    a date. A time after a space or a 'T' (XLSX datetimes) is ignored."""
    m = re.fullmatch(DATE_RE.strip("^$"), value.split(" ")[0].split("T")[0])
    if not m:
        return None
    a, c = m.group(1), m.group(4)
    y, d = (a, c) if len(a) == 4 else (c, a)
    try:
        return date(int(y), int(m.group(3)), int(d))
    except ValueError:
        return None


def _flag(value: str) -> bool | None:
    k = _key(value)
    return True if k in TRUE else False if k in FALSE else None


@dataclass
class Context:
    """What a row is checked against: the 2025 communes, the user's scope, frozen lists."""

    today: date
    communes: dict[int, tuple[int, int]]  # code → (locality id, province id)
    nationwide: bool
    provinces: frozenset[int]
    scope_communes: frozenset[int]
    frozen: frozenset[int]

    @classmethod
    def for_user(cls, user: User, today: date) -> Context:
        communes = Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.COMMUNE)
        provinces, scope_communes = scope_localities(user)
        return cls(
            today=today,
            communes={code: (pk, prov) for code, pk, prov in communes.values_list("code", "id", "province_id")},
            nationwide=is_nationwide(user),
            provinces=frozenset(provinces),
            scope_communes=frozenset(scope_communes),
            frozen=frozenset(
                LocalityFreeze.objects.filter(unfrozen_at__isnull=True).values_list("locality_id", flat=True)
            ),
        )


def validate_row(raw: dict[str, str], ctx: Context, msg: dict[str, str]) -> tuple[dict | None, dict[str, str]]:
    """The rules of one row, in Python: (values to store, field → reason).

    This is the reference the import's SQL (`_validation_sql`) is tested against on random
    rows (tests/beneficiaries/test_imports_sql.py); the personal ID goes through the same
    `personal_id_errors` as the staff form. Duplicates inside a file are file-level
    (`validate_rows`). `raw` holds the stripped cell texts.
    """
    errors: dict[str, str] = {}
    name = " ".join(raw.get("full_name", "").split())
    if not name:
        errors["full_name"] = msg["name_required"]
    dob_text = raw.get("date_of_birth", "")
    dob = _parse_date(dob_text)
    if dob is None:
        errors["date_of_birth"] = msg["not_a_date_v"] % {"v": dob_text[:30]}
    elif dob > ctx.today or dob.year < 1900:
        errors["date_of_birth"] = msg["dob_range"]
        dob = None
    sex = SEX.get(_key(raw.get("sex", "")))
    if sex is None:
        errors["sex"] = msg["sex"]
    pid = raw.get("personal_id", "").replace(" ", "")
    if len(pid) == 11 and pid.isascii() and pid.isdigit():
        pid = "0" + pid  # spreadsheets drop the leading zero of 001…, 042…
    for field, reason in personal_id_errors(pid, date_of_birth=dob, sex=sex).items():
        errors.setdefault(field, reason)
    code_text = raw.get("commune_code", "")
    locality_id = None
    commune = ctx.communes.get(int(code_text)) if code_text.isascii() and code_text.isdigit() else None
    if commune is None:
        errors["commune_code"] = msg["commune_unknown"] % {"v": code_text[:20]}
    else:
        locality_id, province_id = commune
        if not (ctx.nationwide or locality_id in ctx.scope_communes or province_id in ctx.provinces):
            errors["commune_code"] = msg["commune_scope"]
        elif locality_id in ctx.frozen or province_id in ctx.frozen:
            errors["commune_code"] = msg["commune_frozen"]
    si_code = raw.get("si_code", "")
    if si_code and not (len(si_code) == 10 and si_code.isascii() and si_code.isdigit()):
        errors["si_code"] = msg["si_code"]
    relation = RELATION.get(_key(raw.get("relation", "")))
    if relation is None:
        errors["relation"] = msg["relation"]
    poverty = POVERTY.get(_key(raw.get("poverty_class", "")))
    if poverty is None:
        errors["poverty_class"] = msg["poverty"]
    year_text = raw.get("certificate_year", "")
    year = None
    if year_text:
        if year_text.isascii() and year_text.isdigit() and 2000 <= int(year_text) <= ctx.today.year + 1:
            year = int(year_text)
        else:
            errors["certificate_year"] = msg["year"]
    flags = {}
    for field in FLAG_FIELDS:
        flags[field] = _flag(raw.get(field, ""))
        if flags[field] is None:
            errors[field] = msg["flag"]
    valid_until = None
    if raw.get("card_valid_until"):
        valid_until = _parse_date(raw["card_valid_until"])
        if valid_until is None:
            errors["card_valid_until"] = msg["not_a_date"]
    if errors:
        return None, errors
    return {
        "locality_id": locality_id,
        "household_ref": (raw.get("household_ref", "") or pid)[: LIMITS["household_ref"]],
        "address": raw.get("address", "")[: LIMITS["address"]],
        "phone": raw.get("phone", "")[: LIMITS["phone"]],
        "poverty_class": poverty,
        "certificate_number": raw.get("certificate_number", "")[: LIMITS["certificate_number"]],
        "certificate_year": year,
        **{f: flags[f] for f in FLAG_FIELDS},
        "full_name": name[: LIMITS["full_name"]],
        "name_ascii": ascii_fold(name)[: LIMITS["name_ascii"]],
        "date_of_birth": dob,
        "sex": sex,
        "personal_id": pid,
        "si_code": si_code,
        "ethnicity": raw.get("ethnicity", "")[: LIMITS["ethnicity"]],
        "relation": relation,
        "card_group": raw.get("card_group", "")[: LIMITS["card_group"]],
        "card_valid_until": valid_until,
    }, errors


def validate_rows(rows, ctx: Context, msg: dict[str, str]) -> tuple[dict[int, dict], list[RowError]]:
    """The reference for a whole file: rows are (row number, raw dict). A personal ID that
    an earlier good row already has is refused on the later row."""
    good: dict[int, dict] = {}
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for n, raw in rows:
        values, row_errors = validate_row(raw, ctx, msg)
        pid = raw.get("personal_id", "").replace(" ", "")
        pid = "0" + pid if len(pid) == 11 and pid.isascii() and pid.isdigit() else pid
        if "personal_id" not in row_errors and pid in seen:
            row_errors["personal_id"] = msg["pid_dup"] % {"row": seen[pid]}
            values = None
        if values is None:
            errors.extend(RowError(n, f, row_errors[f]) for f in ERROR_FIELDS if f in row_errors)
        else:
            seen[pid] = n
            good[n] = values
    return good, errors


def _header_fields(header: list) -> list[str | None]:
    fields = [HEADER_TO_FIELD.get(_key(_clean(h).strip())) for h in header]
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        names = ", ".join(f"{COLUMNS[f][0]} ({f})" for f in missing)
        raise ImportFileError(_("Missing columns: %(names)s.") % {"names": names}, code="missing_columns")
    return fields


ENCODING_ERROR = "The file is not UTF-8 encoded. Save it as “CSV UTF-8” and upload it again."


def _scan_csv(path: str) -> dict:
    """One pass over the bytes: line count, delimiter, header, and whether PostgreSQL's own
    CSV reader may take the file as is (no '\\.' line, which would end its COPY early)."""
    middle = int(os.path.getsize(path) * (1 - SECOND_PART_SHARE))
    split = None
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
        lines = head.count(b"\n")
        plain = b"\n\\." not in head and not head.startswith(b"\\.")
        tail = head[-3:]
        seen, quotes = len(head), head.count(b'"')
        if middle < seen:
            split = _line_start_outside_quotes(head, middle, 0, 0)
        while chunk := fh.read(1 << 22):
            lines += chunk.count(b"\n")
            plain = plain and b"\n\\." not in tail + chunk
            tail = chunk[-3:]
            if split is None and seen + len(chunk) > middle:
                split = _line_start_outside_quotes(chunk, max(0, middle - seen), seen, quotes)
            seen += len(chunk)
            quotes += chunk.count(b'"')
    if not head.strip():
        raise ImportFileError(_("The file is empty."), code="empty")
    if b"\x00" in head[:4096]:
        raise ImportFileError(_("This is not a CSV text file."), code="encoding")
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            raise ImportFileError(_(ENCODING_ERROR), code="encoding") from exc
    first_line = head.split(b"\n", 1)[0]
    delimiter = ";" if first_line.count(b";") > first_line.count(b",") else ","
    if not head.endswith(b"\n"):
        lines += 1
    with open(path, encoding="utf-8-sig", errors="strict", newline="") as text:
        header = next(csv.reader(text, delimiter=delimiter), [])
    return {"total": max(lines - 1, 0), "delimiter": delimiter, "header": header, "plain": plain, "split": split}


def _line_start_outside_quotes(chunk: bytes, start: int, offset: int, quotes_before: int) -> int | None:
    """File offset of the first line start at or after chunk[start:] that is not inside a
    quoted field (an even number of quote characters before it: PostgreSQL's CSV reader
    toggles on each, and a doubled quote toggles twice), or None in this chunk."""
    at = chunk.find(b"\n", start)
    for _attempt in range(1000):
        if at < 0 or at + 1 >= len(chunk):
            return None
        if (quotes_before + chunk.count(b'"', 0, at)) % 2 == 0:
            return offset + at + 1
        at = chunk.find(b"\n", at + 1)
    return None


def _csv_records(path: str, delimiter: str):
    """Python's reader, for files PostgreSQL's CSV reader refuses (ragged rows, blank lines)."""
    with open(path, encoding="utf-8-sig", errors="strict", newline="") as text:
        reader = csv.reader(text, delimiter=delimiter)
        next(reader, None)
        yield from reader


def _xlsx_open(path: str):
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFileError(_("This is not a readable XLSX workbook."), code="format") from exc
    ws = wb.worksheets[0]
    rows = ws.iter_rows(values_only=True)
    try:
        header = [_clean(v) for v in next(rows)]
    except StopIteration:
        wb.close()
        raise ImportFileError(_("The file is empty."), code="empty") from None

    def records():
        try:
            for values in rows:
                yield [_clean(v) for v in values]
        finally:
            wb.close()

    return header, max((ws.max_row or 1) - 1, 0), records()


def import_job_create(*, user: User, uploaded) -> ImportJob:
    """Store an uploaded file as a pending job; the caller enqueues `import_job_run`."""
    if not (user.is_superuser or user.role in INTAKE_ROLES):
        raise ApplicationError(_("Only commune officers and reviewers import lists."), code="forbidden")
    if uploaded.size > settings.REGISTRY_IMPORT_MAX_BYTES:
        raise ImportFileError(
            _("The file is too large (at most %(mb)s MB).") % {"mb": settings.REGISTRY_IMPORT_MAX_BYTES // 2**20},
            code="too_large",
        )
    if not uploaded.name.lower().endswith((".csv", ".xlsx", ".txt")):
        raise ImportFileError(_("Upload a .csv or .xlsx file."), code="format")
    return ImportJob.objects.create(created_by=user, file=uploaded, original_name=uploaded.name[:255])


# ----------------------------------------------------------------------------------------
# The SQL engine: the same rules over a staging table, set-based.


def _key_sql(x: str) -> str:
    """SQL twin of `_key` (đ → d, no diacritics, lower case, only a-z and 0-9)."""
    return f"regexp_replace(lower(normalize(replace(replace({x}, 'đ', 'd'), 'Đ', 'D'), NFD)), '[^a-z0-9]', '', 'g')"


# Spellings as they usually come, matched byte for byte before the general (slower) key
# path; each one maps to what `_key` gives it, so both paths agree by construction.
COMMON_SPELLINGS = [
    *("Nam", "Nữ", "nam", "nữ", "NAM", "NỮ", "Male", "Female", "male", "female", "M", "F"),
    *("Chủ hộ", "Vợ", "Chồng", "Con", "Bố", "Mẹ", "Cha", "Cháu", "Khác", ""),
    *("Hộ nghèo", "Hộ cận nghèo", "Nghèo", "Cận nghèo", "Hộ nông lâm ngư nghiệp", "Không"),
    *("x", "X", "có", "Có", "1", "0", "head", "spouse", "child", "parent", "other", "poor", "near_poor", "none"),
]


def _map_sql(x: str, mapping: dict[str, str]) -> str:
    fast = " ".join(f"WHEN '{lit}' THEN '{mapping[_key(lit)]}'" for lit in COMMON_SPELLINGS if _key(lit) in mapping)
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"CASE {x} {fast} ELSE CASE {_key_sql(x)} {whens} END END"


def _flag_sql(x: str) -> str:
    return _map_sql(x, {**{k: "t" for k in TRUE}, **{k: "f" for k in FALSE}}) + "::boolean"


def _date_parts_sql(x: str) -> str:
    """Three digit groups split on the first of / - . that occurs (NULL when not that shape).
    A plain match and string_to_array: capture groups cost ten times more in PostgreSQL."""
    s = f"split_part(split_part({x}, ' ', 1), 'T', 1)"
    sep = f"CASE WHEN strpos({s}, '/') > 0 THEN '/' WHEN strpos({s}, '-') > 0 THEN '-' ELSE '.' END"
    return f"CASE WHEN {s} ~ '^[0-9]+[/.-][0-9]+[/.-][0-9]+$' THEN string_to_array({s}, {sep}) END"


def _ymd_sql(parts: str, prefix: str) -> str:
    # Two different separators ("01/02-2020") split into two parts only: not a date.
    ok = f"cardinality({parts}) = 3"
    iso = f"length({parts}[1]) = 4"
    return (
        f"(CASE WHEN {ok} THEN CASE WHEN {iso} THEN {parts}[1] ELSE {parts}[3] END END)::numeric AS {prefix}_y, "
        f"(CASE WHEN {ok} THEN {parts}[2] END)::numeric AS {prefix}_m, "
        f"(CASE WHEN {ok} THEN CASE WHEN {iso} THEN {parts}[3] ELSE {parts}[1] END END)::numeric AS {prefix}_d"
    )


def _make_date_sql(p: str) -> str:
    y, m, d = f"{p}_y", f"{p}_m", f"{p}_d"
    leap = f"(mod({y}, 4) = 0 AND (mod({y}, 100) <> 0 OR mod({y}, 400) = 0))"
    days = f"CASE WHEN {m} IN (4, 6, 9, 11) THEN 30 WHEN {m} = 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END ELSE 31 END"
    return (
        f"CASE WHEN {y} BETWEEN 1 AND 9999 AND {m} BETWEEN 1 AND 12 AND {d} BETWEEN 1 AND {days} "
        f"THEN make_date({y}::int, {m}::int, {d}::int) END"
    )


def _personal_id_text_sql(cell: str) -> str:
    """A personal ID's cell as its checks read it: trimmed, and the spaces inside dropped."""
    return f"replace(btrim(coalesce({cell}, ''), %(ws)s), ' ', '')"


# Spreadsheets drop the leading zero of 001…, 042…: eleven digits get it back. The regex runs
# only on the (rare) eleven-character IDs. Reads `personal_id`, as `_personal_id_text_sql`.
PID_SQL = (
    "CASE WHEN octet_length(personal_id) = 11 AND personal_id ~ '^[0-9]+$' THEN '0' || personal_id ELSE personal_id END"
)


def _validation_sql(fields: list[str | None], n_columns: int) -> str:
    """One statement: import_raw → import_val (parsed values, one reason column per field,
    `ok`, and whether the personal ID is new to the registry). Layers are fenced with
    OFFSET 0 so each expression is computed once per row."""
    index = {f: i for i, f in enumerate(fields) if f}  # a repeated column: the last one wins

    def text(f: str) -> str:
        if f not in index:
            return f"''::text AS {f}_raw" if f in DATE_FIELDS else f"''::text AS {f}"
        if f in UNTRIMMED:
            return f"coalesce(c{index[f]}, '') AS {f}"
        if f in DATE_FIELDS:  # trimmed and parsed once per distinct text (import_dates)
            return f"coalesce(c{index[f]}, '') AS {f}_raw"
        if f == "personal_id":
            return f"{_personal_id_text_sql(f'c{index[f]}')} AS {f}"
        return f"btrim(coalesce(c{index[f]}, ''), %(ws)s) AS {f}"

    texts = ", ".join(text(f) for f in COLUMNS)
    blank = " AND ".join(f"coalesce(c{i}, '') = ''" for i in range(n_columns))
    # `pid_digits` is the one digit test a row pays for (PostgreSQL's bounded repetitions,
    # [0-9]{12}, cost ten times a plain match).
    pid = PID_SQL
    pid12 = "(pid_digits AND octet_length(pid) = 12)"
    msg = {k: f"%(m_{k})s" for k in _messages()}
    e = {
        "full_name": f"CASE WHEN name = '' THEN {msg['name_required']} END",
        "date_of_birth": f"""CASE WHEN dob IS NULL
                THEN replace({msg["not_a_date_v"]}, '%%(v)s', left(date_of_birth, 30))
            WHEN dob > %(today)s OR dob < DATE '1900-01-01' THEN {msg["dob_range"]}
            WHEN pid_ok AND id_year <> extract(year FROM dob) THEN
                replace(replace({msg["pid_year"]}, '%%(dob)s', extract(year FROM dob)::int::text),
                    '%%(id)s', id_year::text)
            END""",
        "sex": f"""CASE WHEN sex_v IS NULL THEN {msg["sex"]}
            WHEN pid_ok AND (CASE WHEN substr(pid, 4, 1) IN ('1', '3', '5') THEN 'female' ELSE 'male' END) <> sex_v
            THEN {msg["pid_sex"]} END""",
        "personal_id": f"""CASE WHEN NOT pid12 THEN {msg["pid_digits"]}
            WHEN NOT pid_province THEN {msg["pid_province"]}
            WHEN substr(pid, 4, 1) > '5' THEN {msg["pid_century"]} END""",
        "commune_code": f"""CASE WHEN locality_id IS NULL
                THEN replace({msg["commune_unknown"]}, '%%(v)s', left(commune_code, 20))
            WHEN NOT allowed THEN {msg["commune_scope"]} WHEN frozen THEN {msg["commune_frozen"]} END""",
        "si_code": f"CASE WHEN si_code <> '' AND si_code !~ '^[0-9]{{10}}$' THEN {msg['si_code']} END",
        "relation": f"CASE WHEN relation_v IS NULL THEN {msg['relation']} END",
        "poverty_class": f"CASE WHEN poverty_v IS NULL THEN {msg['poverty']} END",
        "certificate_year": f"CASE WHEN certificate_year <> '' AND year_v IS NULL THEN {msg['year']} END",
        **{f: f"CASE WHEN {f}_v IS NULL THEN {msg['flag']} END" for f in FLAG_FIELDS},
        "card_valid_until": f"CASE WHEN card_valid_until <> '' AND valid_until IS NULL THEN {msg['not_a_date']} END",
    }
    errors = ", ".join(f"{e[f]} AS e_{f}" for f in ERROR_FIELDS)
    no_error = " AND ".join(f"e_{f} IS NULL" for f in ERROR_FIELDS)
    # Only what the later steps read is stored: the table is written once and read five
    # times, and the raw texts and intermediate flags were a third of its width.
    kept = ", ".join([*VAL_COLUMNS, *(f"{f}_v" for f in FLAG_FIELDS), *(f"e_{f}" for f in ERROR_FIELDS)])
    # A file without card expiry dates (most lists) skips that join.
    valid_until = (
        "d2.text AS card_valid_until, d2.d AS valid_until"
        if "card_valid_until" in index
        else "''::text AS card_valid_until, NULL::date AS valid_until"
    )
    vu_join = "LEFT JOIN import_dates d2 ON d2.raw = r.card_valid_until_raw" if "card_valid_until" in index else ""
    return f"""
    CREATE TEMP TABLE import_val ON COMMIT DROP AS
    SELECT {kept}, NULL::text AS e_dup, ({no_error}) AS ok
    FROM (
        SELECT w.*, {errors}
        FROM (
            SELECT q.*,
                {pid12} AS pid12,
                CASE WHEN {pid12} THEN left(pid, 3)::int = ANY(%(province_codes)s) END AS pid_province,
                CASE WHEN {pid12} AND left(pid, 3)::int = ANY(%(province_codes)s)
                     AND substr(pid, 4, 1) <= '5' THEN true ELSE false END AS pid_ok,
                CASE WHEN {pid12} AND substr(pid, 4, 1) <= '5'
                     THEN 1900 + 100 * (substr(pid, 4, 1)::int / 2) + substr(pid, 5, 2)::int END AS id_year,
                CASE WHEN certificate_year ~ '^[0-9]+$'
                     AND certificate_year::numeric BETWEEN 2000 AND %(max_year)s
                     THEN certificate_year::numeric::smallint END AS year_v,
                NOT EXISTS (SELECT 1 FROM {Member._meta.db_table} x WHERE x.personal_id = q.pid) AS is_new
            FROM (
                SELECT p.*
                FROM (
                    SELECT r.*,
                        full_name AS name,  -- squashed once per distinct name (`_good_sql`)
                        d1.text AS date_of_birth, d1.d AS dob, {valid_until},
                        {_map_sql("sex", SEX)} AS sex_v,
                        {pid} AS pid, personal_id ~ '^[0-9]+$' AS pid_digits,
                        c.id AS locality_id, c.allowed, c.frozen,
                        {_map_sql("relation", RELATION)} AS relation_v,
                        {_map_sql("poverty_class", POVERTY)} AS poverty_v,
                        left(coalesce(nullif(household_ref, ''), {pid}), {LIMITS["household_ref"]}) AS ref,
                        {", ".join(f"{_flag_sql(f)} AS {f}_v" for f in FLAG_FIELDS)}
                    FROM (SELECT row_number, {texts} FROM import_raw WHERE NOT ({blank}) OFFSET 0) r
                    LEFT JOIN import_communes c ON c.code = CASE
                        WHEN commune_code ~ '^[0-9]+$' AND length(ltrim(commune_code, '0')) <= 9
                        THEN commune_code::bigint END
                    LEFT JOIN import_dates d1 ON d1.raw = r.date_of_birth_raw
                    {vu_join}
                    OFFSET 0
                ) p
                OFFSET 0
            ) q
            OFFSET 0
        ) w
        OFFSET 0
    ) y
    """


# Runs of whitespace as one space (Python: " ".join(name.split())); the name is trimmed already.
SQUASH_SQL = "CASE WHEN name ~ %(ws_run)s THEN btrim(regexp_replace(name, %(ws_re)s, ' ', 'g'), ' ') ELSE name END"

# SQL twin of `ascii_fold` for name_ascii (near-duplicate key): đ → d, no diacritics, lower
# case, whitespace squashed.
FOLD_SQL = (
    "btrim(regexp_replace(lower(regexp_replace(normalize(replace(replace(name, 'đ', 'd'), 'Đ', 'D'), NFD), "
    "%(combining)s, '', 'g')), %(ws_re)s, ' ', 'g'), ' ')"
)


def _dates_sql(fields: list[str | None]) -> str:
    """import_dates: every distinct text of the date columns, trimmed and parsed once (a list
    of a million people has a few tens of thousands of distinct dates; parsing is the
    costliest rule of a row, a hash join is not)."""
    index = {f: i for i, f in enumerate(fields) if f}
    texts = " UNION ".join(
        f"SELECT DISTINCT coalesce(c{index[f]}, '') FROM import_raw" for f in DATE_FIELDS if f in index
    )
    return f"""
    CREATE TEMP TABLE import_dates ON COMMIT DROP AS
    SELECT raw, text, {_make_date_sql("x")} AS d
    FROM (
        SELECT raw, text, {_ymd_sql("parts", "x")}
        FROM (
            SELECT raw, text, {_date_parts_sql("text")} AS parts
            FROM (SELECT raw, btrim(raw, %(ws)s) AS text FROM ({texts} UNION SELECT '') u (raw) OFFSET 0) t
            OFFSET 0
        ) p
        OFFSET 0
    ) y
    """


def _validate(cursor, fields: list[str | None], n_columns: int, params: dict, on_chunk=None) -> None:
    """import_raw → import_val (`_validate_rows`), then the duplicates inside the file
    (`_refuse_repeated_ids`)."""
    _validate_rows(cursor, fields, n_columns, params, on_chunk)
    _refuse_repeated_ids(cursor, params)


def _create_dates(cursor, fields: list[str | None], params: dict, keep=False) -> None:
    cursor.execute(_dates_sql(fields).replace(" ON COMMIT DROP AS", f"{_temp(keep)} AS", 1), params)
    cursor.execute("ANALYZE import_dates")


def _validate_rows(
    cursor, fields: list[str | None], n_columns: int, params: dict, on_chunk=None, keep=False, blocks=None
) -> None:
    """import_raw → import_val, in chunks of VALIDATE_ROWS rows (block ranges of import_raw,
    which COPY filled in file order) so that progress shows while a big file is checked;
    `on_chunk(rows validated so far)` after each. `blocks`: only the rows in that range of
    import_raw's blocks (lo, hi), in one statement (the second connection's piece), whose
    dates the caller has parsed already (`_create_dates`, once for all the ranges). `keep`:
    import_val outlives the transaction (`_temp`)."""
    if blocks is None:
        _create_dates(cursor, fields, params)
    select = _validation_sql(fields, n_columns).replace(" ON COMMIT DROP AS", f"{_temp(keep)} AS", 1)
    cursor.execute(f"{select} WITH NO DATA", params)
    insert = select.replace(f"CREATE TEMP TABLE import_val{_temp(keep)} AS", "INSERT INTO import_val", 1)
    if blocks is None:
        cursor.execute(
            "SELECT pg_relation_size('import_raw') / current_setting('block_size')::int, "
            "(SELECT count(*) FROM import_raw)"
        )
        size, rows = cursor.fetchone()
        first, end = 0, size + 1
        step = max(1, size * VALIDATE_ROWS // max(rows, 1))
    else:  # (no progress to show, so no count of the rows)
        (first, end), size, rows = blocks, blocks[1], 0
        step = max(1, end - first)
    for lo in range(first, end, step):
        hi = min(lo + step, end)
        where = f"ctid >= '({lo},0)'::tid" + ("" if hi > size else f" AND ctid < '({hi},0)'::tid")
        cursor.execute(insert.replace("FROM import_raw WHERE", f"FROM import_raw WHERE {where} AND", 1), params)
        if on_chunk is not None:
            on_chunk(rows if hi > size else min(rows, hi * rows // max(size, 1)))
    if blocks is None:
        cursor.execute("DROP TABLE import_dates")


def _temp(keep: bool) -> str:
    """How a working table ends: with the transaction, or (`keep`) with the session, for the
    second connection, whose pieces are handed over by committing (`_SecondHalf`)."""
    return "" if keep else " ON COMMIT DROP"


def _refuse_repeated_ids(cursor, params: dict, offset: int = 0) -> None:
    """A personal ID that an earlier good row of the file has is refused on the later rows (a
    narrow GROUP BY on the IDs as numbers, not a sort of the wide rows). `offset`: what the
    rows' numbers lack (a second part numbered from 2 by its own connection)."""
    cursor.execute(
        """
        UPDATE import_val v SET e_dup = replace(%(m_pid_dup)s, '%%(row)s', (d.first_good + %(offset)s)::text),
            ok = false
        FROM (
            SELECT pid::bigint AS pid, min(row_number) FILTER (WHERE ok) AS first_good
            FROM import_val WHERE e_personal_id IS NULL GROUP BY 1 HAVING count(*) > 1
        ) d
        WHERE v.e_personal_id IS NULL AND v.pid::bigint = d.pid AND v.row_number > d.first_good
        """,
        {**params, "offset": offset},
    )


def _refuse_ids_seen_before(cursor, params: dict) -> None:
    """A later part of the file: a personal ID that an earlier part has on a good row is
    refused on every row of this part that has it, naming that row (what one pass over the
    whole file does: the earlier part's rows come first)."""
    cursor.execute(
        """
        UPDATE import_val v SET e_dup = replace(%(m_pid_dup)s, '%%(row)s', s.row_number::text), ok = false
        FROM import_seen s
        WHERE v.e_personal_id IS NULL AND v.pid::bigint = s.pid
        """,
        params,
    )


def _sql_params(ctx: Context, msg: dict[str, str]) -> dict:
    return {
        "ws": WHITESPACE,
        "ws_re": "[" + WHITESPACE + "]+",
        # Anything for the squashing to do: a run of two, or any whitespace but a space.
        "ws_run": "[" + WHITESPACE.replace(" ", "") + "]|  ",
        "combining": COMBINING_RE,
        "date_re": DATE_RE,
        "today": ctx.today,
        "max_year": ctx.today.year + 1,
        "province_codes": sorted(LEGACY_PROVINCE_CODES),
        **{f"m_{k}": v for k, v in msg.items()},
    }


def _create_communes(cursor, ctx: Context, keep=False) -> None:
    cursor.execute("DROP TABLE IF EXISTS import_communes")
    cursor.execute(
        "CREATE TEMP TABLE import_communes (code bigint PRIMARY KEY, id bigint, allowed boolean, frozen boolean)"
        + _temp(keep)
    )
    rows = []
    for code, (pk, prov) in ctx.communes.items():
        allowed = ctx.nationwide or pk in ctx.scope_communes or prov in ctx.provinces
        frozen = pk in ctx.frozen or prov in ctx.frozen
        rows.append(f"{code}\t{pk}\t{'t' if allowed else 'f'}\t{'t' if frozen else 'f'}\n")
    with cursor.cursor.copy("COPY import_communes FROM STDIN") as cp:
        cp.write("".join(rows).encode())
    cursor.execute("ANALYZE import_communes")


def _create_raw(cursor, n_columns: int, keep=False, table="import_raw") -> None:
    cols = ", ".join(f"c{i} text" for i in range(n_columns))
    # Row numbers as the officer sees them in the spreadsheet: the header is row 1.
    cursor.execute(f"DROP TABLE IF EXISTS {table}")
    cursor.execute(
        f"CREATE TEMP TABLE {table} (row_number bigint GENERATED BY DEFAULT AS IDENTITY (START 2), {cols})"
        + _temp(keep)
    )


def _sqlstate(exc: Exception) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(exc.__cause__, "sqlstate", None)


def _copy_file(
    cursor, path: str, n_columns: int, delimiter: str, start: int = 0, end: int | None = None, table="import_raw"
) -> bool:
    """PostgreSQL parses the CSV itself (the fast path). False when its reader refuses the
    shape of the file (ragged rows, blank lines): the caller then feeds Python's reader.
    `start`/`end`: a byte range of the file (line starts); only the range from 0 has the header."""
    cols = ", ".join(f"c{i}" for i in range(n_columns))
    header = "true" if start == 0 else "false"
    sql = f"COPY {table} ({cols}) FROM STDIN (FORMAT csv, HEADER {header}, DELIMITER '{delimiter}', ENCODING 'UTF8')"
    try:
        with transaction.atomic(), open(path, "rb") as fh, cursor.cursor.copy(sql) as cp:
            fh.seek(start)
            left = (end - start) if end is not None else None
            while chunk := fh.read(1 << 20 if left is None else min(1 << 20, left)):
                cp.write(chunk)
                if left is not None:
                    left -= len(chunk)
    except (DataError, psycopg.DataError) as exc:
        if _sqlstate(exc) in ("22021", "22P05"):  # invalid byte sequence / untranslatable character
            raise ImportFileError(_(ENCODING_ERROR), code="encoding") from exc
        if _sqlstate(exc) == "22P04":  # bad_copy_file_format
            return False
        raise
    return True


def _loaded(cursor) -> tuple[int, int]:
    """(rows in import_raw, the last data row's number less one: the rows the file had)."""
    cursor.execute("SELECT count(*), coalesce(max(row_number), 1) - 1 FROM import_raw")
    return cursor.fetchone()


def _copy_records(cursor, records, n_columns: int, progress) -> None:
    """Python-parsed rows (XLSX, or CSV that PostgreSQL's reader refused) into import_raw."""
    cols = ", ".join(f"c{i}" for i in range(n_columns))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    with cursor.cursor.copy(f"COPY import_raw (row_number, {cols}) FROM STDIN (FORMAT csv)") as cp:
        for n, values in enumerate(records, start=2):
            if not any(values):
                continue
            if n - 1 > settings.REGISTRY_IMPORT_MAX_ROWS:
                raise ImportFileError(_("The file has too many rows."), code="too_large")
            values = list(values[:n_columns]) + [""] * (n_columns - len(values))
            writer.writerow([n, *(v.replace("\x00", "") for v in values)])
            if n % 20_000 == 0:
                cp.write(buf.getvalue())
                buf.seek(0)
                buf.truncate()
                progress.loading(n - 1)
        cp.write(buf.getvalue())


# The columns of import_val whose statistics the later steps' plans need.
ANALYZED = "row_number, ok, is_new, locality_id, ref, name, pid, e_personal_id"

# A CSV of at least this many rows is checked on two connections at once: the import's own
# checks the first part and writes it while the other checks the rest (SECOND_PART_SHARE of
# the bytes) and hands it over in pieces, cut at HANDOVER_SHARES of its rows (here 24 %,
# 20 %, 16 %, 12 % and 8 % of the file). The first part is small, so that writing starts
# early. The other connection checks a row a little more slowly than this one writes it, so
# its lead shrinks piece by piece: the pieces shrink with it, and the last one, which this
# connection writes after the other has finished, is small (measured on a million rows, 2
# cores: no wait; with three pieces, the last 32 %, this one waited 0.9-1.3 s for it).
PARALLEL_MIN_ROWS = 100_000
SECOND_PART_SHARE = 0.8
HANDOVER_SHARES = (0.3, 0.55, 0.75, 0.9)


@dataclass
class _Piece:
    table: str  # a piece of the second connection's import_val rows, committed (`_part_table`)
    loaded: int  # its rows
    last_row: int  # its last row number (0 if none)
    good: int  # its rows without errors, as far as the second connection could tell
    new: int  # of those, whose personal ID the registry did not have
    # Its rows that the first part may have had a good row of the same personal ID for (a
    # repeat there would be refused here): those whose ID the first part has on any row, or
    # None when the second connection could not tell.
    in_first_part: int | None


def _part_table(job_id: int, piece: int) -> str:
    """The table in which the second connection hands a piece of its checked rows over: an
    unlogged table of its own, committed, so that the import's connection reads them where
    they are (a binary COPY out to a file and back in cost the import's connection 0.9 s a
    million rows). The import drops them once it has written them all; `_run` drops what is
    left when the import ends, however it ends."""
    return f"import_part_{int(job_id)}_{int(piece)}"


class _SecondHalf:
    """The rest of a big CSV (from byte `start`, a line start outside any quoted field), read
    and checked by the same SQL on a connection of its own, in a thread, while the import's
    connection checks the first part and writes it: PostgreSQL runs each connection on one
    core.

    It reads its whole part at once (`loaded` says early, before anything is written, whether
    it could), then checks it in pieces (HANDOVER_SHARES) and hands each over as soon as it is
    checked, so that the import's connection, which writes the pieces in turn, never waits
    long: each piece is a committed unlogged table (`_part_table`) of import_val rows,
    numbered after the first part's (`number_after`), with the repeats of a personal ID inside
    the piece and of its earlier pieces refused, in household order (commune, household
    number, personal ID: `_good_sql` then needs no sort). Its transactions write nothing else
    and only read the registry (whether each personal ID is new, which the write re-checks
    anyway) and the file (from the second piece on, whether a piece has personal IDs that the
    first part has too: `_read_first_part_ids`); `abandon` cancels it."""

    def __init__(self, path: str, start: int, fields, delimiter: str, ctx: Context, params: dict, job_id: int):
        import threading

        self._args = (path, start, fields, delimiter, ctx, params)
        self._job_id = job_id
        self._offset: int | None = None
        self._offset_set = threading.Event()
        self._loaded: tuple[int, int] | None = None
        self._loaded_set = threading.Event()
        self._abandoned = False
        self._pieces: list[_Piece] = []
        self._first_part_ids = False  # import_first_ids holds the first part's personal IDs
        self._piece_ready = threading.Condition()
        self._finished = False
        self._error: BaseException | None = None
        self._pg = None
        self._thread = threading.Thread(target=self._run, name="import-second-half", daemon=True)
        self._thread.start()

    def number_after(self, last_row: int) -> None:
        self._offset = last_row
        self._offset_set.set()

    def loaded(self) -> tuple[int, int] | None:
        """Once its part is read: (rows read, the part's last row number less one, as
        `_loaded`); None when it could not read it (PostgreSQL's CSV reader refused the part,
        or the second connection failed before). Raises for a badly encoded part."""
        self._loaded_set.wait()
        if self._loaded is None:
            self._raise_encoding()
        return self._loaded

    def result(self, piece: int = 0) -> _Piece | None:
        """Piece number `piece`, once it is checked; None when the import's connection has to
        do the rest itself: PostgreSQL's CSV reader refused the part, or the second connection
        failed (could not connect, was cancelled, …: an import does not fail for want of a
        second core)."""
        with self._piece_ready:
            self._piece_ready.wait_for(lambda: len(self._pieces) > piece or self._finished)
            if len(self._pieces) > piece:
                return self._pieces[piece]
        self._raise_encoding()
        if self._error is not None:
            logger.warning("import: the second connection failed (%r); this connection does the rest", self._error)
        return None

    def _raise_encoding(self) -> None:
        if isinstance(self._error, ImportFileError) and self._error.code == "encoding":
            raise ImportFileError(_(ENCODING_ERROR), code="encoding") from self._error

    def abandon(self) -> None:
        """Stop it if it still runs (cancel its statement) and wait for it."""
        self._abandoned = True
        self._offset_set.set()
        pg = self._pg
        if pg is not None and self._thread.is_alive():
            try:
                pg.cancel_safe()
            except Exception:  # noqa: BLE001 - it may have just finished
                pass
        self._thread.join()

    def _run(self) -> None:
        path, start, fields, delimiter, ctx, params = self._args
        n_columns = len(fields)
        t0 = time.perf_counter()
        try:
            # This thread's own connection (Django opens one per thread), closed at the end,
            # and with it its temporary tables: they outlive the transactions that hand the
            # pieces over.
            with connection.cursor() as plain:
                self._pg = plain.cursor.connection
                cursor = _TimedCursor(plain, "(second connection) ")
                with transaction.atomic():
                    _prepare_session(cursor)
                    _create_communes(cursor, ctx, keep=True)
                    _create_raw(cursor, n_columns, keep=True)
                    if not _copy_file(cursor, path, n_columns, delimiter, start=start):
                        return  # `loaded` says None: PostgreSQL's CSV reader refused the part
                    self._loaded = _loaded(cursor)
                self._loaded_set.set()
                with transaction.atomic():
                    _prepare_session(cursor)
                    _create_dates(cursor, fields, params, keep=True)

                # Pieces by block ranges, of the blocks that hold rows: the relation's size may
                # also count empty blocks at its end (PostgreSQL extends a table by several
                # blocks at a time), and the last piece would then be short or empty.
                cursor.execute("SELECT coalesce((max(ctid)::text::point)[0]::bigint, 0) + 1 FROM import_raw")
                (used,) = cursor.fetchone()
                bounds = [0, *(round(used * share) for share in HANDOVER_SHARES), used]
                for piece, (lo, hi) in enumerate(itertools.pairwise(bounds)):
                    if piece == 1:  # (not before the first piece: the import's connection waits for it)
                        self._first_part_ids = self._read_first_part_ids(cursor, path, fields, delimiter, start)
                    with transaction.atomic():
                        _prepare_session(cursor)
                        cursor.execute("DROP TABLE IF EXISTS import_val")
                        _validate_rows(cursor, fields, n_columns, params, keep=True, blocks=(lo, hi))
                        self._offset_set.wait()
                        if self._abandoned:
                            return
                        self._pieces_hand_over(cursor, piece, params)
        except BaseException as exc:  # noqa: BLE001 - handed to the import's thread
            if not self._abandoned:
                self._error = exc
        finally:
            self._loaded_set.set()
            with self._piece_ready:
                self._finished = True
                self._piece_ready.notify_all()
            self._pg = None
            connection.close()
            LAST_TIMINGS["second half on another connection"] = time.perf_counter() - t0

    def _read_first_part_ids(self, cursor, path: str, fields, delimiter: str, end: int) -> bool:
        """import_first_ids: every personal ID of the first part's rows (bad rows' too), as its
        checks read them. A piece's row whose ID is not among them cannot repeat a good row of
        the first part, so the import's connection need not look (`_Piece.in_first_part`).
        False when they could not be read."""
        index = {f: i for i, f in enumerate(fields) if f}  # a repeated column: the last, as `_validation_sql`
        cell = f"c{index['personal_id']}"
        try:
            with transaction.atomic():
                _prepare_session(cursor)  # (work_mem: the distinct IDs stay in memory)
                _create_raw(cursor, len(fields), keep=True, table="import_first")
                if not _copy_file(cursor, path, len(fields), delimiter, end=end, table="import_first"):
                    return False
                cursor.execute(
                    f"CREATE TEMP TABLE import_first_ids AS SELECT DISTINCT {PID_SQL} AS pid FROM "
                    f"(SELECT {_personal_id_text_sql(cell)} AS personal_id FROM import_first) f",
                    {"ws": WHITESPACE},
                )
                cursor.execute("DROP TABLE import_first")
                cursor.execute("ANALYZE import_first_ids")
        except (DatabaseError, ImportFileError):
            if not self._abandoned:  # (a cancelled statement is no news)
                logger.warning("import: the second connection could not read the first part's IDs", exc_info=True)
            return False
        return True

    def _pieces_hand_over(self, cursor, piece: int, params: dict) -> None:
        """import_val (this piece, checked) → its own table, committed by the caller's block.
        To this piece, the earlier pieces are earlier rows of the same file: a personal ID
        that one of them has on a good row is refused here (import_seen, of this connection),
        as the import's connection refuses those of the first part."""
        offset = int(self._offset)
        table = _part_table(self._job_id, piece)
        cursor.execute("SET LOCAL default_statistics_target = 10")
        cursor.execute(f"ANALYZE import_val ({ANALYZED})")
        _refuse_repeated_ids(cursor, params, offset)
        if piece > 0:
            _refuse_ids_seen_before(cursor, params)
        if piece < len(HANDOVER_SHARES):
            cursor.execute("CREATE TEMP TABLE IF NOT EXISTS import_seen (pid bigint, row_number bigint)")
            cursor.execute(
                "INSERT INTO import_seen SELECT pid::bigint, row_number + %s FROM import_val WHERE ok", [offset]
            )
            cursor.execute("ANALYZE import_seen")
        in_first_part = None
        if self._first_part_ids:
            cursor.execute(
                "SELECT count(*) FROM import_val WHERE e_personal_id IS NULL "
                "AND pid IN (SELECT pid FROM import_first_ids)"
            )
            (in_first_part,) = cursor.fetchone()
        cursor.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'import_val'::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum"
        )
        columns = ", ".join(
            f"v.row_number + {offset} AS row_number" if name == "row_number" else f'v."{name}"'
            for (name,) in cursor.fetchall()
        )
        # With the new members' names squashed and folded, as `_good_sql` would (NAMES_SQL), and
        # the row that gives each new household, as `_write_part` would find it.
        cursor.execute(
            f"CREATE UNLOGGED TABLE {table} AS SELECT {columns}, f.name AS squashed, f.name_ascii AS folded, "
            "h.first IS NOT NULL AS first_of_household "
            f"FROM import_val v LEFT JOIN ({NAMES_SQL}) f ON f.raw = v.name "
            "LEFT JOIN (SELECT min(row_number) AS first FROM import_val WHERE ok AND is_new "
            "GROUP BY locality_id, ref) h ON h.first = v.row_number "
            'ORDER BY v.locality_id, v.ref COLLATE "C", v.pid COLLATE "C"',
            params,
        )
        cursor.execute(f"ANALYZE {table} ({ANALYZED})")
        cursor.execute(
            "SELECT count(*), coalesce(max(row_number), 0), count(*) FILTER (WHERE ok), "
            f"count(*) FILTER (WHERE ok AND is_new) FROM {table}"
        )
        count, last_row, good, new = cursor.fetchone()
        # Handed over once committed: the caller's block ends right after this.
        given = _Piece(table, count, last_row, good, new, in_first_part)
        transaction.on_commit(lambda: self._publish(given))

    def _publish(self, result: _Piece) -> None:
        with self._piece_ready:
            self._pieces.append(result)
            self._piece_ready.notify_all()


# Seconds per statement of the last import in this process (the benchmark prints them).
LAST_TIMINGS: dict[str, float] = {}


class _TimedCursor:
    """The import's cursor, timing each statement (keyed by its first words, after `prefix`)."""

    def __init__(self, cursor, prefix: str = ""):
        self._c = cursor
        self._prefix = prefix

    def execute(self, sql, params=None):
        label = self._prefix + " ".join(sql.split()[:4])[:48]
        t0 = time.perf_counter()
        try:
            return self._c.execute(sql, params)
        finally:
            LAST_TIMINGS[label] = LAST_TIMINGS.get(label, 0.0) + time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self._c, name)


class _Progress:
    """Publishes rows done on a connection of its own (autocommit), so the page and the API
    see it while the import's transaction is still open."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.conn = connections.create_connection(DEFAULT_DB_ALIAS)

    def _set(self, **values):
        cols = ", ".join(f"{k} = %s" for k in values)
        try:
            with self.conn.cursor() as c:
                c.execute(
                    f"UPDATE {ImportJob._meta.db_table} SET {cols} WHERE id = %s", [*values.values(), self.job_id]
                )
        except DatabaseError:
            pass  # progress is informative only; the import itself goes on

    def loading(self, rows: int):
        self._set(rows_total=max(rows, 0))

    def done(self, rows: int, total: int):
        self._set(rows_done=rows, rows_total=total)

    def drop_parts(self) -> None:
        """Drop the second connection's tables of this job that are left (on this connection:
        the import's transaction has rolled back, or not begun)."""

        tables = ", ".join(_part_table(self.job_id, piece) for piece in range(len(HANDOVER_SHARES) + 1))
        try:
            with self.conn.cursor() as c:
                c.execute("SET lock_timeout = '5s'")
                c.execute(f"DROP TABLE IF EXISTS {tables}")
        except DatabaseError:
            logger.warning("import: could not drop %s", tables, exc_info=True)

    def close(self):
        self.conn.close()


def import_job_run(*, job_id: int) -> ImportJob:
    """Run one import job. Claims it with a conditional UPDATE (pending → running), so a
    task delivered twice runs it once; a finished job is returned as is."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportStatus.PENDING).update(
        status=ImportStatus.RUNNING, started_at=timezone.now()
    )
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    if not claimed:
        return job
    try:
        return _run(job)
    except ImportFileError as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, error=exc.message, finished_at=timezone.now()
        )
    except UnicodeDecodeError:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, error=_(ENCODING_ERROR), finished_at=timezone.now()
        )
    except csv.Error as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED,
            error=_("The CSV file is malformed: %(e)s") % {"e": exc},
            finished_at=timezone.now(),
        )
    except OperationalError:
        # Transient (connection lost, lock timeout): the transaction rolled back, so hand the
        # job back to `pending` for the task's retry to claim it again.
        connection.close()
        ImportJob.objects.filter(pk=job.pk, status=ImportStatus.RUNNING).update(status=ImportStatus.PENDING)
        raise
    except Exception:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED,
            error=_("The import stopped on an unexpected error; nothing was written."),
            finished_at=timezone.now(),
        )
        raise
    job.refresh_from_db()
    return job


def _run(job: ImportJob) -> ImportJob:
    path = job.file.path
    if os.path.getsize(path) > settings.REGISTRY_IMPORT_MAX_BYTES:
        raise ImportFileError(_("The file is too large."), code="too_large")
    lower = job.original_name.lower()
    if lower.endswith(".xlsx"):
        header, total, records = _xlsx_open(path)
        scan = None
    elif lower.endswith((".csv", ".txt")):
        scan = _scan_csv(path)
        header, total, records = scan["header"], scan["total"], None
    else:
        raise ImportFileError(_("Upload a .csv or .xlsx file."), code="format")
    fields = _header_fields(header)
    if total > settings.REGISTRY_IMPORT_MAX_ROWS:
        raise ImportFileError(
            _("The file has too many rows (at most %(n)s).") % {"n": f"{settings.REGISTRY_IMPORT_MAX_ROWS:,}"},
            code="too_large",
        )
    ImportJob.objects.filter(pk=job.pk).update(rows_total=total)
    ctx = Context.for_user(job.created_by, timezone.localdate())
    progress = _Progress(job.pk)
    progress.drop_parts()  # left by an earlier attempt of this job that crashed
    try:
        # One transaction for every write: a file-level error at any row leaves nothing behind.
        with transaction.atomic(), connection.cursor() as cursor:
            LAST_TIMINGS.clear()
            t0 = time.perf_counter()
            counts = _import(_TimedCursor(cursor), job, ctx, fields, path, scan, records, progress)
            LAST_TIMINGS["total inside the transaction"] = time.perf_counter() - t0
            t0 = time.perf_counter()
        LAST_TIMINGS["COMMIT (deferred foreign-key checks)"] = time.perf_counter() - t0
    except BaseException:
        # The second connection's tables, committed by it: the import drops the pieces it
        # wrote, but a rollback brings them back.
        progress.drop_parts()
        raise
    finally:
        progress.close()
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.DONE, finished_at=timezone.now(), **counts)
    job.refresh_from_db()
    return job


# Each distinct name of the new members squashed and folded once (OFFSET 0 keeps the planner
# from inlining them at every use): lists repeat names a lot, and these are the costliest
# expressions. `raw` is the name as import_val has it.
NAMES_SQL = f"""
    SELECT raw, name, {FOLD_SQL} AS name_ascii
    FROM (SELECT name AS raw, {SQUASH_SQL} AS name
          FROM (SELECT DISTINCT name FROM import_val WHERE ok AND is_new) n OFFSET 0) s
    OFFSET 0
    """


def _good_sql(handed_over: bool = False) -> str:
    """import_good: the new members as they will be stored, in household order: the member
    table's household index and its near-duplicate index (commune first; households are
    numbered commune by commune) then fill page by page, leaving one index (personal ID)
    filled at random; in personal-ID order it was two, and the insert cost 25 % more CPU at a
    million rows. With whether the registry already has someone of the same folded name,
    date of birth and commune.

    `handed_over`: import_val is a piece from the second connection (`_SecondHalf`), which
    squashed and folded the names already (`squashed`, `folded`), and is in (commune,
    household number, personal ID) order. The hash join below keeps the order of the rows it
    probes with, which then is household order (new households are numbered in that order),
    so the sort is left out (0.6 s for 600,000 rows). Only the speed of the insert depends on
    that order, never its outcome."""
    m = Member._meta.db_table
    if handed_over:
        name, folded, names, order = "v.squashed", "v.folded", "", ""
    else:
        name, folded, order = "f.name", "f.name_ascii", 'ORDER BY k.id, v.pid COLLATE "C"'
        names = f"JOIN ({NAMES_SQL}) f ON f.raw = v.name"
    return f"""
    CREATE TEMP TABLE import_good ON COMMIT DROP AS
    SELECT k.id AS household_id, v.locality_id,
        left({name}, {LIMITS["full_name"]}) AS full_name, left({folded}, {LIMITS["name_ascii"]}) AS name_ascii,
        v.dob, v.sex_v AS sex, v.pid, v.si_code, left(v.ethnicity, {LIMITS["ethnicity"]}) AS ethnicity,
        v.relation_v AS relation, v.is_student_v AS is_student,
        left(v.card_group, {LIMITS["card_group"]}) AS card_group, v.valid_until,
        EXISTS (SELECT 1 FROM {m} x WHERE x.locality_id = v.locality_id AND x.date_of_birth = v.dob
            AND x.name_ascii = left({folded}, {LIMITS["name_ascii"]})) AS dup_in_registry
    FROM import_val v JOIN import_hh k ON k.locality_id = v.locality_id AND k.ref = v.ref
    {names}
    WHERE v.ok AND v.is_new
    {order}
    """


# Near-duplicates inside the file: the keys that more than one new member has (a hash
# aggregate over three narrow columns, instead of sorting the wide rows by them).
DUPS_SQL = """
    CREATE TEMP TABLE import_dups ON COMMIT DROP AS
    SELECT locality_id, dob, name_ascii FROM import_good GROUP BY 1, 2, 3 HAVING count(*) > 1
    """


def _references(job: ImportJob) -> list[Reference]:
    """Every foreign key of the rows a part of the import writes (households and members), as
    the ids to verify, read from the temporary table they are copied from verbatim (one part's:
    reading the households the whole import wrote so far, after each part, cost 0.3 s a
    million rows): import_hh's new households, and import_good's households and communes,
    which are import_hh's (a household taken over from a concurrent registration is no longer
    `is_new`); the user and the job are the same on every row."""
    h, m = Household._meta.db_table, Member._meta.db_table
    user, locality, jobs = User._meta.db_table, Locality._meta.db_table, ImportJob._meta.db_table
    params = {"job": job.pk, "user": job.created_by_id}
    return [
        Reference(f"{h}.locality_id", locality, "SELECT DISTINCT locality_id FROM import_hh WHERE is_new"),
        Reference(f"{h}.created_by_id", user, "SELECT %(user)s::bigint", params),
        Reference(f"{h}.import_job_id", jobs, "SELECT %(job)s::bigint", params),
        # Households this import inserted exist (this transaction wrote them, nobody else can
        # see them yet, let alone delete them); the ones it reuses are checked and locked.
        Reference(f"{m}.household_id", h, "SELECT id FROM import_hh WHERE NOT is_new"),
        Reference(f"{m}.locality_id", locality, "SELECT DISTINCT locality_id FROM import_hh"),
        Reference(f"{m}.submitted_by_id", user, "SELECT %(user)s::bigint", params),
        Reference(f"{m}.import_job_id", jobs, "SELECT %(job)s::bigint", params),
    ]


def _prepare_session(cursor) -> None:
    """The settings of a connection that runs the import's SQL (the import's own and the
    second part's)."""
    # Sorts and hashes over a million rows stay in memory instead of spilling to disk.
    cursor.execute("SET LOCAL work_mem = '256MB'")
    # JIT-compiling the validation's expressions costs more than it saves (measured: +15 %).
    cursor.execute("SET LOCAL jit = off")
    # Room for the working tables in this backend's own buffers. They are temporary tables,
    # kept in `temp_buffers` (8 MB by default), and a million rows' validation table is a few
    # hundred MB that later steps read five times. PostgreSQL accepts the setting only before
    # the session's first temporary table: a reused connection keeps what it had.
    try:
        with transaction.atomic():
            cursor.execute("SET temp_buffers = %s", [settings.CHUNGTAY_IMPORT_TEMP_BUFFERS])
    except DatabaseError:
        pass


def _import(cursor, job, ctx, fields, path, scan, records, progress) -> dict:
    n_columns = len(fields)
    _prepare_session(cursor)
    _create_communes(cursor, ctx)
    _create_raw(cursor, n_columns)
    params = _sql_params(ctx, _messages())
    # A big CSV is read and checked on two connections at once: this one checks its first part
    # and writes it while the other (the machine's other core) checks the rest and hands it over
    # in pieces (`_SecondHalf`), which this one then writes in turn.
    split = None
    if scan is not None and scan["plain"] and scan["split"] and scan["total"] >= PARALLEL_MIN_ROWS:
        split = scan["split"]
    helper = _SecondHalf(path, split, fields, scan["delimiter"], ctx, params, job.pk) if split else None
    try:
        t0 = time.perf_counter()
        if scan is not None and not (
            scan["plain"] and _copy_file(cursor, path, n_columns, scan["delimiter"], end=split)
        ):
            records = _csv_records(path, scan["delimiter"])
            if helper is not None:  # PostgreSQL's reader refused the file: Python's takes all of it
                helper.abandon()
                helper = None
        if records is not None:
            _copy_records(cursor, records, n_columns, progress)
        LAST_TIMINGS["COPY the file"] = time.perf_counter() - t0
        loaded, last_row = _loaded(cursor)
        total = max(last_row, loaded, scan["total"] if helper is not None else 0)
        if helper is not None:
            helper.number_after(last_row)
        tally = _Tally(total=total)
        _validate_rows(cursor, fields, n_columns, params, lambda rows: progress.done(_work(total, rows), total))
        if helper is not None:
            rest = helper.loaded()
            if rest is None:
                # The other connection could not read the second part: this one reads it itself
                # (numbered on from the first), or if PostgreSQL's CSV reader refuses that part,
                # Python's reader reads the whole file again; then it is one part, checked here.
                helper.abandon()
                helper = None
                cursor.execute("DROP TABLE import_val")
                if not _copy_file(cursor, path, n_columns, scan["delimiter"], start=split):
                    cursor.execute("TRUNCATE import_raw")
                    _copy_records(cursor, _csv_records(path, scan["delimiter"]), n_columns, progress)
                loaded, last_row = _loaded(cursor)
                tally.total = max(last_row, loaded)
                _validate_rows(cursor, fields, n_columns, params)
            else:
                loaded += rest[0]
                tally.total = max(rest[1] + last_row, loaded)
        # Before anything is written: a file with more rows than its lines showed.
        if loaded > settings.REGISTRY_IMPORT_MAX_ROWS:
            raise ImportFileError(_("The file has too many rows."), code="too_large")
        _write_part(cursor, job, params, progress, tally, first=True, last=helper is None)
        if helper is not None:
            pieces = len(HANDOVER_SHARES) + 1
            handed_last = 0  # the last row number handed over so far
            written: list[str] = []  # the tables of the pieces written (dropped at the end)
            for piece in range(pieces):
                t0 = time.perf_counter()
                given = helper.result(piece)
                LAST_TIMINGS["wait for the second connection"] = (
                    LAST_TIMINGS.get("wait for the second connection", 0.0) + time.perf_counter() - t0
                )
                if given is None:
                    # The other connection stopped after reading its part (so PostgreSQL's
                    # reader takes it): this one reads the part again and checks what it has
                    # not handed over, to which the pieces written are earlier rows.
                    for table in written:
                        cursor.execute(f"INSERT INTO import_seen SELECT pid::bigint, row_number FROM {table} WHERE ok")
                    cursor.execute("ANALYZE import_seen")
                    cursor.execute("TRUNCATE import_raw")
                    if not _copy_file(cursor, path, n_columns, scan["delimiter"], start=split):
                        raise RuntimeError("PostgreSQL's CSV reader refused a part it had read before")
                    cursor.execute("DELETE FROM import_raw WHERE row_number <= %s", [handed_last])
                    _validate_rows(cursor, fields, n_columns, params)
                    _write_part(cursor, job, params, progress, tally, first=False, last=True)
                    break
                # Its rows where they are, under the name every statement reads.
                cursor.execute(f"CREATE TEMP VIEW import_val AS SELECT * FROM {given.table}")
                last = piece == pieces - 1
                _write_part(cursor, job, params, progress, tally, first=False, last=last, piece=given)
                cursor.execute("DROP VIEW import_val")
                written.append(given.table)
                handed_last = max(handed_last, given.last_row)
            for table in written:
                cursor.execute(f"DROP TABLE {table}")

    finally:
        if helper is not None:
            helper.abandon()
    if tally.rows == 0:
        raise ImportFileError(_("The file has a header but no rows."), code="empty")
    for table in ("import_raw", "import_val", "import_communes", "import_seen"):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
    return {
        "rows_total": tally.total,
        "rows_done": tally.rows,
        "rows_created": tally.created,
        "rows_unchanged": tally.good - tally.created,
        "rows_failed": tally.rows - tally.good,
    }


@dataclass
class _Tally:
    """What the parts of a file added up to, and the progress shown meanwhile."""

    total: int  # the file's rows
    rows: int = 0  # read and checked so far
    good: int = 0
    created: int = 0

    # Rows whose outcome is in the database: a part's refused and unchanged ones once its
    # errors are, its new ones batch by batch.
    written: int = 0


def _write_part(
    cursor, job, params: dict, progress: _Progress, tally: _Tally, *, first: bool, last: bool, piece=None
) -> None:
    """One part of the file, checked (import_val): its row errors, households and members.
    A later part's rows are the file's later rows, so what an earlier part wrote is already
    the registry to them: its households are reused, its members count as near-duplicates
    (and are flagged), and a personal ID that an earlier part has on a good row is refused
    here as the same file's repeat (import_seen: the first part's; the second connection
    refuses those of its own earlier pieces). `piece`: import_val is a view of the second
    connection's table (`_SecondHalf`: analysed, its own repeats refused, in household order,
    with what it found out about its rows, `_Piece`)."""
    user, now = job.created_by, timezone.now()
    h = Household._meta.db_table
    total = tally.total
    # Temporary tables are never analysed by autovacuum; the joins and groupings below need
    # row counts (without them the repeated-ID check sorted a million IDs, and the households
    # were found by sorting the whole table), and a sample of 3,000 rows gives them (the
    # default 30,000 costs 0.2 s a million rows).
    cursor.execute("SET LOCAL default_statistics_target = 10")
    if piece is None:  # (the other connection analysed its table and refused its repeats)
        cursor.execute(f"ANALYZE import_val ({ANALYZED})")
        _refuse_repeated_ids(cursor, params)

    # Rows refused here as repeats of an earlier part's: none, unless some of this part's IDs
    # are the first part's (a piece says whether it has any). What the second connection
    # found out about a piece's rows (which row gives each household, the counts) holds unless
    # some were refused here.
    refused = 0
    if not first and (piece is None or piece.in_first_part != 0):
        _refuse_ids_seen_before(cursor, params)
        refused = cursor.rowcount
    taken = piece is not None and refused == 0
    if first and not last:
        # This part's good personal IDs (one row each now), for the parts after it.
        cursor.execute("CREATE TEMP TABLE import_seen (pid bigint, row_number bigint) ON COMMIT DROP")
        cursor.execute("INSERT INTO import_seen SELECT pid::bigint, row_number FROM import_val WHERE ok")
        cursor.execute("ANALYZE import_seen")
    if taken:
        rows, good, new = piece.loaded, piece.good, piece.new
    else:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE ok), count(*) FILTER (WHERE ok AND is_new) FROM import_val"
        )
        rows, good, new = cursor.fetchone()
    tally.rows += rows
    tally.good += good
    # Row errors: (row, field, reason), in the order of the columns of the form.
    error_values = (
        ", ".join(f"({i}, '{f}', e_{f})" for i, f in enumerate(ERROR_FIELDS) if f != "personal_id")
        + f", ({ERROR_FIELDS.index('personal_id')}, 'personal_id', coalesce(e_personal_id, e_dup))"
    )
    if first:
        cursor.execute(f"DELETE FROM {ImportRowError._meta.db_table} WHERE job_id = %s", [job.pk])
    cursor.execute(
        f"""
        INSERT INTO {ImportRowError._meta.db_table} (job_id, row_number, field, reason)
        SELECT %s, v.row_number, e.field, left(e.reason, 300)
        FROM import_val v CROSS JOIN LATERAL (VALUES {error_values}) e(ord, field, reason)
        WHERE NOT v.ok AND e.reason IS NOT NULL
        ORDER BY v.row_number, e.ord
        """,
        [job.pk],
    )
    tally.written += rows - new
    progress.done(_work(total, tally.rows, tally.written), total)

    def written(done: int) -> None:
        progress.done(_work(total, tally.rows, tally.written + done), total)

    # Every foreign key of the households and members written below is checked once, set-based,
    # when the block ends (`_references`), instead of by one trigger call per row and key.
    with set_based_fk_checks(cursor, _references(job)):
        # Households of the new members: an existing (commune, number) is reused; new ones get
        # their ids from the sequence here, so the members need no join to find them. (The
        # sequence's name is looked up once: per row, the lookup cost 3 µs, 0.8 s a million rows.)
        firsts = "v.first_of_household"
        if not taken:
            firsts = (
                "v.row_number IN (SELECT min(row_number) FROM import_val WHERE ok AND is_new GROUP BY locality_id, ref)"
            )
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [h])
        household_ids = cursor.fetchone()[0]
        cursor.execute(
            f"""
            CREATE TEMP TABLE import_hh ON COMMIT DROP AS
            SELECT coalesce(hh.id, nextval(%s::regclass)) AS id, hh.id IS NULL AS is_new, k.*
            FROM (
                -- Each household as its first good row gives it: the first row number per
                -- (commune, number) by a hash aggregate over two narrow columns, then those rows
                -- (sorting the million wide rows instead took twice as long). In (commune,
                -- number) order, so the ids drawn below follow it; C collation: byte order
                -- sorts several times faster than the locale's.
                SELECT v.locality_id, v.ref,
                    left(v.address, {LIMITS["address"]}) AS address, left(v.phone, {LIMITS["phone"]}) AS phone,
                    v.poverty_v AS poverty_class,
                    left(v.certificate_number, {LIMITS["certificate_number"]}) AS certificate_number,
                    v.year_v AS certificate_year, v.is_poor_commune_v AS is_poor_commune,
                    v.is_ethnic_minority_v AS is_ethnic_minority, v.is_island_commune_v AS is_island_commune
                FROM import_val v
                WHERE {firsts}
                ORDER BY v.locality_id, v.ref COLLATE "C"
            ) k
            LEFT JOIN {h} hh ON hh.locality_id = k.locality_id AND hh.external_ref = k.ref
            """,
            [household_ids],
        )
        household_sql = f"""
            INSERT INTO {h} (id, locality_id, external_ref, address, phone, poverty_class, certificate_number,
                certificate_year, is_poor_commune, is_ethnic_minority, is_island_commune, created_by_id,
                import_job_id, created_at, updated_at)
            SELECT id, locality_id, ref, address, phone, poverty_class, certificate_number, certificate_year,
                is_poor_commune, is_ethnic_minority, is_island_commune, %s, %s, %s, %s
            FROM import_hh WHERE is_new ORDER BY locality_id, ref COLLATE "C"
            {{conflict}}
            """
        # The join above found none of these households registered; if someone registers one
        # meanwhile, theirs stays (and is used, below).
        _insert(
            cursor, household_sql, [user.pk, job.pk, now, now], "ON CONFLICT (locality_id, external_ref) DO NOTHING"
        )
        inserted = cursor.rowcount
        cursor.execute("ANALYZE import_hh")
        cursor.execute("SELECT count(*) FROM import_hh WHERE is_new")
        if inserted != cursor.fetchone()[0]:
            # Someone registered one of these households meanwhile: use theirs.
            cursor.execute(
                f"""UPDATE import_hh k SET id = hh.id, is_new = false FROM {h} hh
                WHERE k.is_new AND hh.locality_id = k.locality_id AND hh.external_ref = k.ref AND hh.id <> k.id"""
            )
        values = [MemberStatus.SUBMITTED, user.pk, job.pk, now, now]
        created = _insert_members(cursor, params, values, new, written, handed_over=piece is not None)
    # Members already in the registry that the new ones resemble are flagged too: a few rows
    # (which the planner learns from the statistics: without them it guessed thousands and
    # read the whole member table, 0.2 s, instead of looking each up in member_near_dup).
    cursor.execute("ANALYZE import_good (dup_in_registry)")
    cursor.execute(
        f"""
        UPDATE {Member._meta.db_table} mm SET is_possible_duplicate = true
        FROM (SELECT DISTINCT name_ascii, dob, locality_id FROM import_good WHERE dup_in_registry) d
        WHERE mm.name_ascii = d.name_ascii AND mm.date_of_birth = d.dob AND mm.locality_id = d.locality_id
          AND NOT mm.is_possible_duplicate
        """
    )
    tally.created += created
    tally.written += new
    cursor.execute("DROP TABLE import_good")
    cursor.execute("DROP TABLE import_hh")


def _batches(cursor, table: str, alias: str, rows: int):
    """Block ranges of `table` of about BATCH_ROWS of its `rows` each, as conditions on the
    `ctid` of `alias` (a TID range scan: no sort, no re-scan of the whole table per batch),
    with the rows done after each."""
    cursor.execute(f"SELECT pg_relation_size('{table}') / current_setting('block_size')::int")
    blocks = cursor.fetchone()[0]
    step = max(1, blocks * BATCH_ROWS // max(rows, 1))
    for lo in range(0, blocks + 1, step):
        final = lo + step > blocks
        upper = "" if final else f" AND {alias}.ctid < '({lo + step},0)'::tid"
        done = rows if final else min(rows, (lo + step) * rows // max(blocks, 1))
        yield f"{alias}.ctid >= '({lo},0)'::tid{upper}", done


def _insert(cursor, sql: str, values: list, conflict: str) -> None:
    """`sql` with `{conflict}` empty: a plain insert (ON CONFLICT's check before each row costs
    a fifth of it). Only if it fails on a row someone else registered meanwhile, again with
    `conflict` (theirs stays)."""
    try:
        with transaction.atomic():
            cursor.execute(sql.format(conflict=""), values)
    except IntegrityError:
        cursor.execute(sql.format(conflict=conflict), values)


def _insert_members(cursor, params: dict, values: list, new: int, written, handed_over: bool) -> int:
    """The part's new members: import_good (`_good_sql`), in household order, then inserted in
    batches. Near-duplicates (same folded name, date of birth, commune) inside the part or
    against the registry are flagged for a reviewer, never merged; the registry's side of a
    pair is flagged by the caller (import_good's `dup_in_registry`)."""
    cursor.execute(_good_sql(handed_over), params)
    if not handed_over:  # its rows are not read again (a piece's view goes with its table)
        cursor.execute("DROP TABLE import_val")
    cursor.execute(DUPS_SQL)
    cursor.execute("ANALYZE import_dups")
    # No history row per member: the member's first history entry ("imported from <file>,
    # job N") is derived from the row itself (`member_history`); later transitions are rows.
    member_sql = f"""
        INSERT INTO {Member._meta.db_table} (household_id, locality_id, full_name, name_ascii, date_of_birth, sex,
            personal_id, si_code, ethnicity, relation, is_student, card_group, card_valid_until, status,
            submitted_by_id, import_job_id, is_possible_duplicate, created_at, updated_at)
        SELECT g.household_id, g.locality_id, g.full_name, g.name_ascii, g.dob, g.sex, g.pid, g.si_code,
            g.ethnicity, g.relation, g.is_student, g.card_group, g.valid_until, %s, %s, %s,
            d.dob IS NOT NULL OR g.dup_in_registry, %s, %s
        FROM import_good g LEFT JOIN import_dups d
            ON d.locality_id = g.locality_id AND d.dob = g.dob AND d.name_ascii = g.name_ascii
        WHERE {{batch}}
        {{{{conflict}}}}
        """
    created = 0
    for batch, done in _batches(cursor, "import_good", "g", new):
        _insert(cursor, member_sql.format(batch=batch), values, "ON CONFLICT (personal_id) DO NOTHING")
        created += cursor.rowcount
        written(done)
    cursor.execute("DROP TABLE import_dups")
    return created


def import_errors_csv(*, job: ImportJob) -> str:
    """The error file: row, field, reason (UTF-8 with BOM so Excel shows Vietnamese)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow([_("Row"), _("Field"), _("Reason")])
    for row_number, field, reason in job.row_errors.values_list("row_number", "field", "reason").iterator():
        # Reasons quote the uploaded value: keep a spreadsheet from reading it as a formula.
        if reason[:1] in ("=", "+", "-", "@", "\t", "\r"):  # tab/CR too: Excel strips them, then runs "=…"
            reason = "'" + reason
        reason = reason.replace(": =", ": '=").replace(": +", ": '+").replace(": @", ": '@")
        writer.writerow([row_number, field, reason])
    return out.getvalue()
