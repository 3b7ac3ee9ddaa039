"""A big CSV is checked in two parts on two connections at once (`imports._SecondHalf`): the
outcome is the one connection's, to the row numbers in the error file."""

from datetime import date

import pytest

from beneficiaries.models import Household, ImportJob, ImportRowError, ImportStatus, Member
from beneficiaries.services import imports

from .test_imports import HEADER, pid, run


@pytest.fixture(autouse=True)
def media(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def second_parts(monkeypatch):
    """Every import of more than one row uses the second connection; records what it gave:
    its rows, or None when the import's connection had to do its part (found as soon as it
    could not read the part, `loaded`, or when it handed nothing back, `result`)."""
    monkeypatch.setattr(imports, "PARALLEL_MIN_ROWS", 2)
    given = []
    real_loaded, real_result = imports._SecondHalf.loaded, imports._SecondHalf.result

    def loaded(self):
        out = real_loaded(self)
        if out is None:
            given.append(None)
        return out

    def result(self, piece=0):
        out = real_result(self, piece)
        given.append(out)
        return out

    monkeypatch.setattr(imports._SecondHalf, "loaded", loaded)
    monkeypatch.setattr(imports._SecondHalf, "result", result)
    return given


def one_connection(monkeypatch):
    monkeypatch.setattr(imports, "PARALLEL_MIN_ROWS", 10**9)


def rows(n: int, repeats: int | None = 0) -> list[str]:
    """n rows in households of three, with a bad row, a quoted address with a line break and
    a near-duplicate every so often, and the person on row `repeats` (0: the first; None: no
    one) again every so often after it, in another household: refused there."""
    out = []
    for i in range(n):
        if repeats is not None and i > repeats and i % 97 == 0:
            out.append(out[repeats].replace(f"HT{repeats // 3},", f"HT{i // 3},", 1))
            continue
        dob = date(1950 + i % 50, 1 + i % 12, 1 + i % 28)
        sex = "male" if i % 2 else "female"
        serial = 1000 + i
        name = f"Người Số {i % 40}"
        # A near-duplicate (another ID) of someone 300 rows up (in another part) or 5 rows up.
        if (i >= 300 and i % 101 == 0) or i % 89 == 0:
            j = i - 300 if i % 101 == 0 else i - 5
            dob, sex, name = (
                date(1950 + j % 50, 1 + j % 12, 1 + j % 28),
                "male" if j % 2 else "female",
                f"Người Số {j % 40}",
            )
        address = f'"Tổ {i}, thôn ""Đông""\nxã X"' if i % 13 == 0 else f"Tổ {i}"
        sex_vi = "?" if i % 31 == 5 else ("Nam" if sex == "male" else "Nữ")
        out.append(
            f"HT{i // 3},{name},{dob:%d/%m/%Y},{sex_vi},{pid(dob, sex, serial)},,Kinh,Con,{address},18073,Hộ cận nghèo,"
        )
    return out


def registered_before(officer) -> None:
    """Someone already in the registry whom row 800 of `rows` resembles (same folded name, date
    of birth and commune, another ID): both are flagged, the registered one by the import."""
    dob = date(1950, 9, 17)
    row = f"HX1,Nguoi So 0,{dob:%d/%m/%Y},Nữ,{pid(dob, 'female', 90000)},,Kinh,Chủ hộ,Tổ 1,18073,Hộ cận nghèo,"
    assert run(officer, f"{HEADER}\n{row}\n").rows_created == 1


def outcome(job) -> dict:
    return {
        "status": job.status,
        "counts": (job.rows_total, job.rows_done, job.rows_created, job.rows_failed, job.rows_unchanged),
        "errors": list(job.row_errors.order_by("row_number", "field").values_list("row_number", "field", "reason")),
        "members": sorted(
            Member.objects.values_list(
                "personal_id",
                "full_name",
                "name_ascii",
                "date_of_birth",
                "sex",
                "household__external_ref",
                "is_possible_duplicate",
            )
        ),
        "households": sorted(Household.objects.values_list("external_ref", "address", "poverty_class")),
    }


def forget_everything():
    Member.objects.all().delete()
    Household.objects.all().delete()


# Without repeats of the first part's IDs, the pieces' households, near-duplicate pairs and
# counts come as the second connection found them (`_Piece`); with them, as the import's
# connection finds them again. Repeats inside the second connection's part (row 300 is in its
# first piece) it refuses itself. Committed (transaction=True): the second connection sees
# the registry as it is committed.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "repeats", [0, 300, None], ids=["the first part's IDs repeated", "the second part's repeated", "no repeated ID"]
)
def test_two_connections_import_what_one_does(officer, thanh_sen, monkeypatch, second_parts, repeats):
    text = "\n".join([HEADER, *rows(900, repeats)]) + "\n"
    one_connection(monkeypatch)
    registered_before(officer)
    alone = outcome(run(officer, text))
    assert alone["status"] == ImportStatus.DONE and alone["counts"][3] > 20
    assert sum(member[-1] for member in alone["members"]) >= 10  # near-duplicates flagged, across parts too
    assert [m[-1] for m in alone["members"] if m[1] in ("Nguoi So 0", "Người Số 0") and m[3] == date(1950, 9, 17)] == [
        True,
        True,
    ]
    assert ("personal_id" in {f for _r, f, _why in alone["errors"]}) == (repeats is not None) and second_parts == []
    forget_everything()

    registered_before(officer)
    monkeypatch.setattr(imports, "PARALLEL_MIN_ROWS", 2)
    both = outcome(run(officer, text))
    # Every piece came from the second connection, and together they are its part of the file.
    assert len(second_parts) == len(imports.HANDOVER_SHARES) + 1 and None not in second_parts
    assert sum(piece.loaded for piece in second_parts) > 300 and all(piece.loaded for piece in second_parts)
    # The first piece comes before the second connection reads the first part's IDs.
    counts = [piece.in_first_part for piece in second_parts]
    assert counts[0] is None and (sum(counts[1:]) > 0) == (repeats == 0)
    assert both == alone


def test_the_second_part_starts_on_a_line_outside_any_quoted_field(tmp_path, monkeypatch):
    # One address, quoted and spread over many lines, covers the middle of the file, where
    # the second part would start.
    monkeypatch.setattr(imports, "SECOND_PART_SHARE", 0.5)
    long_address = '"' + "\n".join(f"dòng {k}, có ngoặc" for k in range(400)) + '"'
    lines = [HEADER, *rows(30), f"HT99,Lê Văn A,01/01/1980,Nam,{pid(date(1980, 1, 1), 'male', 5)},,Kinh,Con,"
             f"{long_address},18073,,", *rows(30)]  # fmt: skip
    content = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    split = imports._scan_csv(str(path))["split"]
    middle = len(content) // 2
    start = content.index(long_address.encode())
    assert start < middle < start + len(long_address.encode())
    assert split is not None and content[split - 1 : split] == b"\n"
    assert content[:split].count(b'"') % 2 == 0
    assert split > content.index(long_address.encode()) + len(long_address.encode())  # after the quoted field


def test_a_second_part_postgres_cannot_read_falls_back_to_one_reader(officer, thanh_sen, monkeypatch, second_parts):
    # A short row in the second part only: PostgreSQL's CSV reader refuses that part, and
    # Python's reader then reads the whole file on the import's own connection.
    body = rows(400)
    body[350] = "HT999,Thiếu Cột,01/01/1990,Nam"
    text = "\n".join([HEADER, *body]) + "\n"
    one_connection(monkeypatch)
    alone = outcome(run(officer, text))
    forget_everything()

    monkeypatch.setattr(imports, "PARALLEL_MIN_ROWS", 2)
    both = outcome(run(officer, text))
    assert second_parts == [None]
    assert both == alone and alone["status"] == ImportStatus.DONE


def test_bad_encoding_in_the_second_part_fails_the_job_and_writes_nothing(officer, thanh_sen, second_parts):
    raw = ("\n".join([HEADER, *rows(400)]) + "\n").encode() + "Trần,01/01/1990".encode("utf-16") + b"\n"
    job = run(officer, raw=raw)
    assert job.status == ImportStatus.FAILED and "UTF-8" in job.error
    assert not Member.objects.exists() and not Household.objects.exists()
    assert not ImportRowError.objects.filter(job=job).exists()


def test_an_import_does_not_fail_when_the_second_connection_does(officer, thanh_sen, monkeypatch, second_parts):
    # The second connection cannot work (here: its first statement fails as if the server had
    # no connection slot left); the import's own connection reads and checks that part too.
    import threading

    from django.db import OperationalError

    text = "\n".join([HEADER, *rows(500)]) + "\n"
    one_connection(monkeypatch)
    alone = outcome(run(officer, text))
    forget_everything()

    real = imports._create_communes

    def create_communes(cursor, ctx):
        if threading.current_thread().name == "import-second-half":
            raise OperationalError("sorry, too many clients already")
        return real(cursor, ctx)

    monkeypatch.setattr(imports, "_create_communes", create_communes)
    monkeypatch.setattr(imports, "PARALLEL_MIN_ROWS", 2)
    both = outcome(run(officer, text))
    assert second_parts == [None]
    assert both == alone and alone["status"] == ImportStatus.DONE


def part_tables(job) -> list[str]:
    """The second connection's tables of this job that this connection still sees (those of
    earlier tests come back when their test's transaction rolls back the import's drop)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE %s AND relkind = 'r'", [f"import_part_{job.pk}_%"]
        )
        return [name for (name,) in cursor.fetchall()]


def test_the_second_connection_stopping_after_a_piece_leaves_the_rest_to_the_import(
    officer, thanh_sen, monkeypatch, second_parts
):
    # It hands over its first piece, then fails (here: as if the server had gone away); the
    # import's connection reads the part again and checks and writes what it was not given.
    from django.db import OperationalError

    text = "\n".join([HEADER, *rows(900, repeats=300)]) + "\n"  # (row 300 is in the first piece)
    one_connection(monkeypatch)
    alone = outcome(run(officer, text))
    forget_everything()

    real = imports._SecondHalf._pieces_hand_over

    def hand_over(self, cursor, piece, params):
        if piece == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(self, cursor, piece, params)

    monkeypatch.setattr(imports._SecondHalf, "_pieces_hand_over", hand_over)
    monkeypatch.setattr(imports, "PARALLEL_MIN_ROWS", 2)
    job = run(officer, text)
    both = outcome(job)
    assert second_parts[0] is not None and second_parts[0].loaded > 50 and second_parts[1:] == [None]
    assert both == alone
    assert part_tables(job) == []


def test_an_import_that_fails_after_a_piece_was_handed_over_writes_nothing_and_leaves_no_table(
    officer, thanh_sen, monkeypatch, second_parts
):
    real = imports._write_part

    def write_part(cursor, job, params, progress, tally, **kw):
        if kw.get("piece"):
            raise RuntimeError("disk full")
        return real(cursor, job, params, progress, tally, **kw)

    monkeypatch.setattr(imports, "_write_part", write_part)
    with pytest.raises(RuntimeError):
        run(officer, "\n".join([HEADER, *rows(900)]) + "\n")
    job = ImportJob.objects.latest("pk")
    assert job.status == ImportStatus.FAILED and second_parts and second_parts[0] is not None
    assert not Member.objects.exists() and not Household.objects.exists()
    assert part_tables(job) == []


def test_without_the_first_parts_ids_every_piece_is_checked_against_the_first_part(
    officer, thanh_sen, monkeypatch, second_parts
):
    # The second connection could not read the first part's IDs (say, the statement failed):
    # it cannot say which pieces are clear of them, so the import's connection checks each.
    text = "\n".join([HEADER, *rows(900, repeats=0)]) + "\n"
    one_connection(monkeypatch)
    alone = outcome(run(officer, text))
    forget_everything()

    monkeypatch.setattr(imports._SecondHalf, "_read_first_part_ids", lambda self, *args: False)
    monkeypatch.setattr(imports, "PARALLEL_MIN_ROWS", 2)
    both = outcome(run(officer, text))
    assert len(second_parts) == len(imports.HANDOVER_SHARES) + 1
    assert [piece.in_first_part for piece in second_parts] == [None] * len(second_parts)
    assert both == alone and len([e for e in alone["errors"] if e[1] == "personal_id"]) >= 5
