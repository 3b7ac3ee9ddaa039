"""Bulk import of commune lists (CSV or XLSX, Vietnamese or English headers).

Two phases, so that a file-level error leaves nothing half-written and progress is visible:

1. Parse and validate row by row in Python (progress is committed on the ImportJob every
   PROGRESS_EVERY rows). Good rows go to a temporary file in COPY format; bad rows are kept
   as (row number, field, reason). Any file-level error (encoding, empty, missing columns,
   too large) fails the job before the database is touched.
2. One transaction: COPY the good rows into a temporary staging table, then set-based
   INSERT … ON CONFLICT DO NOTHING into households and members (keyed on the personal ID,
   so importing the same file again changes nothing), one INSERT … SELECT of history rows,
   one UPDATE flagging near-duplicates, and the row errors.

Set-based rather than row by row because a province sends lists of a million people.
"""

from __future__ import annotations

import csv
import io
import os
import queue
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from config.exceptions import ApplicationError
from donors.models import User
from donors.scopes import is_nationwide, scope_localities

from ..identifiers import CENTURIES, LEGACY_PROVINCE_CODES
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
    MemberTransition,
    PovertyClass,
    Relation,
    Scheme,
)
from .registry import INTAKE_ROLES

# Rows per batch handed from the parser to the writer (and per progress update).
BATCH_ROWS = 50_000


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

# Staging columns, in COPY order.
STAGE_COLUMNS = [
    ("row_number", "integer"),
    ("locality_id", "bigint"),
    ("household_ref", "text"),
    ("address", "text"),
    ("phone", "text"),
    ("poverty_class", "text"),
    ("certificate_number", "text"),
    ("certificate_year", "smallint"),
    ("is_poor_commune", "boolean"),
    ("is_ethnic_minority", "boolean"),
    ("is_island_commune", "boolean"),
    ("full_name", "text"),
    ("name_ascii", "text"),
    ("date_of_birth", "date"),
    ("sex", "text"),
    ("personal_id", "text"),
    ("si_code", "text"),
    ("ethnicity", "text"),
    ("relation", "text"),
    ("is_student", "boolean"),
    ("card_group", "text"),
    ("card_valid_until", "date"),
]


class ImportFileError(ApplicationError):
    """The file as a whole cannot be imported (nothing is written)."""


@dataclass
class RowError:
    row_number: int
    field: str
    reason: str


def _clean(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _copy_text(value: str) -> str:
    # COPY text format: backslash, tab and newlines are special.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return value


def _parse_date(value: str) -> date:
    """dd/mm/yyyy (Vietnamese forms), dd-mm-yyyy, dd.mm.yyyy or ISO yyyy-mm-dd."""
    value = value.split(" ")[0].split("T")[0]
    for sep in ("/", "-", "."):
        if sep in value:
            a, b, c = value.split(sep)
            if len(a) == 4:
                return date(int(a), int(b), int(c))
            return date(int(c), int(b), int(a))
    raise ValueError(value)


@lru_cache(maxsize=65536)
def _fold_name(name: str) -> str:
    if name.isascii():
        return " ".join(name.lower().split())
    text = name.replace("đ", "d").replace("Đ", "D")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return " ".join(text.lower().split())


def _bool(value: str, field: str) -> bool:
    k = _key(value)
    if k in TRUE:
        return True
    if k in FALSE:
        return False
    raise ValueError(field)


class _Validator:
    """Turns one row (a dict field → text) into a COPY line or a list of errors."""

    def __init__(self, *, user: User, today: date):
        self.today = today
        communes = Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.COMMUNE)
        self.communes = {code: (pk, prov) for code, pk, prov in communes.values_list("code", "id", "province_id")}
        frozen = set(LocalityFreeze.objects.filter(unfrozen_at__isnull=True).values_list("locality_id", flat=True))
        self.frozen = frozen
        self.nationwide = is_nationwide(user)
        self.provinces, self.scope_communes = scope_localities(user)
        self.seen: dict[str, int] = {}

    def row(self, n: int, raw: dict[str, str]) -> tuple[str | None, list[RowError]]:
        errors: list[RowError] = []

        def err(field, reason):
            errors.append(RowError(n, field, reason))

        name = " ".join(raw.get("full_name", "").split())
        if not name:
            err("full_name", _("The full name is required."))
        dob = None
        dob_text = raw.get("date_of_birth", "")
        try:
            dob = _parse_date(dob_text)
            if dob > self.today or dob.year < 1900:
                err("date_of_birth", _("The date of birth is out of range."))
                dob = None
        except (ValueError, TypeError):
            err("date_of_birth", _("Not a date (expected dd/mm/yyyy): %(v)s") % {"v": dob_text[:30]})
        sex = SEX.get(_key(raw.get("sex", "")))
        if sex is None:
            err("sex", _("Sex must be Nam or Nữ."))
        pid = raw.get("personal_id", "").replace(" ", "")
        if len(pid) == 11 and pid.isdigit():
            pid = "0" + pid  # spreadsheets drop the leading zero of 001…, 042…
        if len(pid) != 12 or not pid.isdigit():
            err("personal_id", _("The personal ID must be exactly 12 digits."))
        elif int(pid[:3]) not in LEGACY_PROVINCE_CODES:
            err("personal_id", _("The first three digits of the personal ID are not a province code."))
        elif int(pid[3]) not in CENTURIES:
            err("personal_id", _("The fourth digit of the personal ID must be 0 to 5 (century and sex)."))
        else:
            digit = int(pid[3])
            if dob is not None and CENTURIES[digit] + int(pid[4:6]) != dob.year:
                err("date_of_birth", _("The date of birth does not match the personal ID's birth year."))
            if sex is not None and ("female" if digit % 2 else "male") != sex:
                err("sex", _("The sex does not match the personal ID's fourth digit."))
            first = self.seen.get(pid)
            if first is not None:
                err("personal_id", _("The same personal ID is already on row %(row)s.") % {"row": first})
        code_text = raw.get("commune_code", "")
        locality_id = None
        try:
            code = int(code_text)
            locality_id, province_id = self.communes[code]
            if not self.nationwide and locality_id not in self.scope_communes and province_id not in self.provinces:
                err("commune_code", _("You may not register people in this commune."))
                locality_id = None
            elif locality_id in self.frozen or province_id in self.frozen:
                err("commune_code", _("The list of this commune is frozen."))
                locality_id = None
        except (ValueError, KeyError):
            err("commune_code", _("Unknown commune code (2025 list): %(v)s") % {"v": code_text[:20]})
        si_code = raw.get("si_code", "")
        if si_code and not (len(si_code) == 10 and si_code.isdigit()):
            err("si_code", _("The social insurance code must be 10 digits."))
        relation = RELATION.get(_key(raw.get("relation", "")))
        if relation is None:
            err("relation", _("Unknown relation to the head of household."))
        poverty = POVERTY.get(_key(raw.get("poverty_class", "")))
        if poverty is None:
            err("poverty_class", _("Poverty class must be nghèo, cận nghèo, nông lâm ngư nghiệp or empty."))
        year_text = raw.get("certificate_year", "")
        year = ""
        if year_text:
            if year_text.isdigit() and 2000 <= int(year_text) <= self.today.year + 1:
                year = year_text
            else:
                err("certificate_year", _("Not a year."))
        flags = []
        for field in ("is_poor_commune", "is_ethnic_minority", "is_island_commune", "is_student"):
            try:
                flags.append("t" if _bool(raw.get(field, ""), field) else "f")
            except ValueError:
                err(field, _("Expected x/có or empty."))
                flags.append("f")
        valid_until = ""
        if raw.get("card_valid_until"):
            try:
                valid_until = _parse_date(raw["card_valid_until"]).isoformat()
            except (ValueError, TypeError):
                err("card_valid_until", _("Not a date (expected dd/mm/yyyy)."))
        if errors:
            return None, errors
        self.seen[pid] = n
        line = "\t".join(
            (
                str(n),
                str(locality_id),
                _copy_text(raw.get("household_ref", "") or pid)[:40],
                _copy_text(raw.get("address", ""))[:300],
                _copy_text(raw.get("phone", ""))[:20],
                poverty,
                _copy_text(raw.get("certificate_number", ""))[:40],
                year or "\\N",
                flags[0],
                flags[1],
                flags[2],
                _copy_text(name)[:200],
                _copy_text(_fold_name(name))[:200],
                dob.isoformat(),
                sex,
                pid,
                si_code,
                _copy_text(raw.get("ethnicity", ""))[:60],
                relation,
                flags[3],
                _copy_text(raw.get("card_group", ""))[:4],
                valid_until or "\\N",
            )
        )
        return line + "\n", []


def _header_fields(header: list) -> list[str | None]:
    fields = [HEADER_TO_FIELD.get(_key(_clean(h))) for h in header]
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        names = ", ".join(f"{COLUMNS[f][0]} ({f})" for f in missing)
        raise ImportFileError(_("Missing columns: %(names)s.") % {"names": names}, code="missing_columns")
    return fields


def _csv_rows(path: str):
    """(total rows, iterator of lists). Strict UTF-8 (with or without BOM)."""
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
        total = head.count(b"\n")
        while chunk := fh.read(1 << 22):
            total += chunk.count(b"\n")
    if not head.strip():
        raise ImportFileError(_("The file is empty."), code="empty")
    if b"\x00" in head[:4096]:
        raise ImportFileError(_("This is not a CSV text file."), code="encoding")
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            raise ImportFileError(
                _("The file is not UTF-8 encoded. Save it as “CSV UTF-8” and upload it again."), code="encoding"
            ) from exc
    first_line = head.split(b"\n", 1)[0]
    delimiter = ";" if first_line.count(b";") > first_line.count(b",") else ","
    if not head.endswith(b"\n") and total == 0:
        total = 1

    def rows():
        with open(path, encoding="utf-8-sig", errors="strict", newline="") as text:
            yield from csv.reader(text, delimiter=delimiter)

    return total, rows()


def _xlsx_rows(path: str):
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFileError(_("This is not a readable XLSX workbook."), code="format") from exc
    ws = wb.worksheets[0]
    total = ws.max_row or 0

    def rows():
        try:
            for values in ws.iter_rows(values_only=True):
                yield [_clean(v) for v in values]
        finally:
            wb.close()

    return total, rows()


def _open_rows(path: str, name: str):
    lower = name.lower()
    if lower.endswith(".xlsx"):
        return _xlsx_rows(path)
    if lower.endswith(".csv") or lower.endswith(".txt"):
        return _csv_rows(path)
    raise ImportFileError(_("Upload a .csv or .xlsx file."), code="format")


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


class _Writer:
    """Phase 2, batch by batch, inside the caller's transaction: COPY a batch of good rows
    into a temporary table, insert its households and members set-based, remember its
    near-duplicate keys; `finish` flags near-duplicates and stores the row errors."""

    def __init__(self, *, job: ImportJob, user: User, cursor):
        self.job, self.user, self.cursor = job, user, cursor
        self.created = self.households = 0
        self.now = timezone.now()
        cols = ", ".join(f"{c} {ty}" for c, ty in STAGE_COLUMNS)
        # ON COMMIT DROP covers the normal case; the explicit DROPs cover an enclosing
        # transaction (tests, a caller's atomic block) where commit comes later.
        cursor.execute("DROP TABLE IF EXISTS import_stage")
        cursor.execute("DROP TABLE IF EXISTS import_keys")
        cursor.execute(f"CREATE TEMP TABLE import_stage ({cols}) ON COMMIT DROP")
        cursor.execute(
            "CREATE TEMP TABLE import_keys (name_ascii text, date_of_birth date, locality_id bigint) ON COMMIT DROP"
        )

    def batch(self, data: bytes) -> None:
        cursor, job, user, now = self.cursor, self.job, self.user, self.now
        m, h, t = Member._meta.db_table, Household._meta.db_table, MemberTransition._meta.db_table
        cursor.execute("TRUNCATE import_stage")
        with cursor.cursor.copy(f"COPY import_stage ({', '.join(c for c, _ty in STAGE_COLUMNS)}) FROM STDIN") as cp:
            view = memoryview(data)
            for start in range(0, len(view), 1 << 20):
                cp.write(view[start : start + (1 << 20)])
        # No ANALYZE per batch (it cost ~0.3 s each): an unanalysed temp table is estimated
        # from its size, which is enough to get hash joins here.
        cursor.execute(
            f"""
            INSERT INTO {h} (locality_id, external_ref, address, phone, poverty_class, certificate_number,
                certificate_year, is_poor_commune, is_ethnic_minority, is_island_commune, created_by_id,
                import_job_id, created_at, updated_at)
            SELECT DISTINCT ON (locality_id, household_ref) locality_id, household_ref, address, phone,
                poverty_class, certificate_number, certificate_year, is_poor_commune, is_ethnic_minority,
                is_island_commune, %s, %s, %s, %s
            FROM import_stage ORDER BY locality_id, household_ref, row_number
            ON CONFLICT (locality_id, external_ref) DO NOTHING
            """,
            [user.pk, job.pk, now, now],
        )
        self.households += cursor.rowcount
        # Members arrive submitted by the importer; existing personal IDs are left untouched.
        # A plain INSERT of the rows whose ID is new (anti-join) is much cheaper than
        # ON CONFLICT's speculative insertion; if someone registers one of these IDs between
        # the anti-join and the insert, the savepoint rolls back and ON CONFLICT takes over.
        member_sql = f"""
            WITH ins AS (
                INSERT INTO {m} (household_id, locality_id, full_name, name_ascii, date_of_birth, sex,
                    personal_id, si_code, ethnicity, relation, is_student, card_group, card_valid_until,
                    status, submitted_by_id, is_possible_duplicate, created_at, updated_at)
                SELECT hh.id, s.locality_id, s.full_name, s.name_ascii, s.date_of_birth, s.sex, s.personal_id,
                    s.si_code, s.ethnicity, s.relation, s.is_student, s.card_group, s.card_valid_until,
                    %s, %s, false, %s, %s
                FROM import_stage s
                JOIN {h} hh ON hh.locality_id = s.locality_id AND hh.external_ref = s.household_ref
                WHERE NOT EXISTS (SELECT 1 FROM {m} x WHERE x.personal_id = s.personal_id)
                -- In key order, the unique index on personal_id is filled page by page.
                ORDER BY s.personal_id
                {{conflict}}
                RETURNING id
            )
            INSERT INTO {t} (member_id, actor_id, at, from_status, to_status, reason)
            SELECT id, %s, %s, '', %s, %s FROM ins
            """
        params = [MemberStatus.SUBMITTED, user.pk, now, now, user.pk, now, MemberStatus.SUBMITTED, f"import #{job.pk}"]
        try:
            with transaction.atomic():
                cursor.execute(member_sql.format(conflict=""), params)
        except IntegrityError:
            cursor.execute(member_sql.format(conflict="ON CONFLICT (personal_id) DO NOTHING"), params)
        self.created += cursor.rowcount
        cursor.execute(
            "INSERT INTO import_keys SELECT DISTINCT name_ascii, date_of_birth, locality_id FROM import_stage"
        )

    def finish(self, errors: list[RowError]) -> None:
        m = Member._meta.db_table
        cursor = self.cursor
        # Near-duplicates (same ascii name + date of birth + commune) are flagged, never merged.
        cursor.execute("ANALYZE import_keys")
        cursor.execute(
            f"""
            UPDATE {m} mm SET is_possible_duplicate = true
            FROM (
                SELECT x.name_ascii, x.date_of_birth, x.locality_id
                FROM {m} x
                JOIN (SELECT DISTINCT name_ascii, date_of_birth, locality_id FROM import_keys) s
                  ON s.name_ascii = x.name_ascii AND s.date_of_birth = x.date_of_birth
                 AND s.locality_id = x.locality_id
                GROUP BY 1, 2, 3 HAVING count(*) > 1
            ) d
            WHERE mm.name_ascii = d.name_ascii AND mm.date_of_birth = d.date_of_birth
              AND mm.locality_id = d.locality_id AND NOT mm.is_possible_duplicate
            """
        )
        cursor.execute("DROP TABLE import_stage")
        cursor.execute("DROP TABLE import_keys")
        ImportRowError.objects.filter(job=self.job).delete()
        ImportRowError.objects.bulk_create(
            [
                ImportRowError(job=self.job, row_number=e.row_number, field=e.field, reason=e.reason[:300])
                for e in errors
            ],
            batch_size=5000,
        )


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
            status=ImportStatus.FAILED,
            error=_("The file is not UTF-8 encoded. Save it as “CSV UTF-8” and upload it again."),
            finished_at=timezone.now(),
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


class _Parser(threading.Thread):
    """Phase 1 in a thread: parse and validate, hand over batches of COPY lines.

    Python parsing and PostgreSQL's inserts then run on two cores at once. The thread
    touches the database only to publish progress, on its own (autocommit) connection, so
    progress is visible while the import's transaction is still open.
    """

    def __init__(self, *, job_id, rows, fields, validator, language):
        super().__init__(daemon=True)
        self.job_id, self.rows, self.fields, self.validator, self.language = job_id, rows, fields, validator, language
        self.batches: queue.Queue = queue.Queue(maxsize=3)
        self.errors: list[RowError] = []
        self.done = self.good = 0
        self.stop = threading.Event()

    def run(self):
        translation.activate(self.language)
        try:
            indexed = [(i, f) for i, f in enumerate(self.fields) if f]
            validator, errors, lines = self.validator, self.errors, []
            for n, values in enumerate(self.rows, start=2):
                if self.stop.is_set():
                    return
                if not any(values):
                    continue
                raw = {f: values[i].strip() if i < len(values) else "" for i, f in indexed}
                line, row_errors = validator.row(n, raw)
                if line is None:
                    errors.extend(row_errors)
                else:
                    lines.append(line)
                self.done += 1
                if self.done > settings.REGISTRY_IMPORT_MAX_ROWS:
                    raise ImportFileError(_("The file has too many rows."), code="too_large")
                if self.done % BATCH_ROWS == 0:
                    self._hand_over(lines)
                    lines = []
                    ImportJob.objects.filter(pk=self.job_id).update(rows_done=self.done)
            self._hand_over(lines)
            self.batches.put(("done", None))
        except (ImportFileError, UnicodeDecodeError, csv.Error) as exc:
            self.batches.put(("error", exc))
        except Exception as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self.batches.put(("error", exc))
        finally:
            connection.close()

    def _hand_over(self, lines):
        if lines:
            self.good += len(lines)
            self.batches.put(("batch", "".join(lines).encode()))


def _run(job: ImportJob) -> ImportJob:
    user = job.created_by
    path = job.file.path
    if os.path.getsize(path) > settings.REGISTRY_IMPORT_MAX_BYTES:
        raise ImportFileError(_("The file is too large."), code="too_large")
    total, rows = _open_rows(path, job.original_name)
    try:
        header = next(rows)
    except StopIteration:
        raise ImportFileError(_("The file is empty."), code="empty") from None
    fields = _header_fields(header)
    total = max(total - 1, 0)
    if total > settings.REGISTRY_IMPORT_MAX_ROWS:
        raise ImportFileError(
            _("The file has too many rows (at most %(n)s).") % {"n": f"{settings.REGISTRY_IMPORT_MAX_ROWS:,}"},
            code="too_large",
        )
    ImportJob.objects.filter(pk=job.pk).update(rows_total=total)
    validator = _Validator(user=user, today=timezone.localdate())
    parser = _Parser(job_id=job.pk, rows=rows, fields=fields, validator=validator, language=translation.get_language())
    parser.start()
    try:
        # One transaction for every write: a file-level error at any row leaves nothing behind.
        with transaction.atomic(), connection.cursor() as cursor:
            writer = _Writer(job=job, user=user, cursor=cursor)
            while True:
                kind, payload = parser.batches.get()
                if kind == "error":
                    raise payload
                if kind == "done":
                    break
                writer.batch(payload)
            if parser.done == 0:
                raise ImportFileError(_("The file has a header but no rows."), code="empty")
            writer.finish(parser.errors)
    finally:
        parser.stop.set()
        while parser.is_alive():  # unblock a parser waiting on a full queue, then let it end
            try:
                parser.batches.get_nowait()
            except queue.Empty:
                parser.join(0.05)
    failed_rows = len({e.row_number for e in parser.errors})
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.DONE,
        rows_total=max(total, parser.done),
        rows_done=parser.done,
        rows_created=writer.created,
        rows_unchanged=parser.good - writer.created,
        rows_failed=failed_rows,
        finished_at=timezone.now(),
    )
    job.refresh_from_db()
    return job


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
