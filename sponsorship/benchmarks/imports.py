"""Registry import: a generated commune list through the real import path, vs COPY.

Generates a realistic CSV (Vietnamese headers, households of 1–6 people across real 2025
communes, about 2% bad rows and 1% near-duplicates), runs `import_job_run` on it exactly
as the Celery task does, and reports rows/s and the ratio to the same run's COPY rate.
Benchmark rows are removed afterwards (households numbered BENCH-…) unless --keep.
"""

import csv
import os
import random
import statistics
import time
from datetime import date, timedelta

from django.conf import settings
from django.db import connection, transaction

from .floor import write_floor
from .limits import copy_rate
from .report import Stopwatch

HEADER = (
    "Mã hộ,Họ và tên,Ngày sinh,Giới tính,Số CCCD/Số định danh cá nhân,Mã số BHXH,Dân tộc,"
    "Quan hệ với chủ hộ,Địa chỉ,Mã xã,Hộ nghèo/Hộ cận nghèo,Học sinh/Sinh viên\n"
)
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô"]
MIDDLE = {"male": ["Văn", "Đức", "Hữu", "Minh", "Quang"], "female": ["Thị", "Ngọc", "Thu", "Thanh", "Kim"]}
GIVEN = ["An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Hùng", "Lan", "Mai", "Nam", "Phương", "Quân", "Sơn", "Tâm"]
CLASSES = ["Hộ nghèo", "Hộ cận nghèo", "Hộ cận nghèo", "Hộ nông lâm ngư nghiệp", ""]
RELATIONS = ["Chủ hộ", "Vợ", "Con", "Con", "Bố", "Cháu"]
GOAL = 0.06  # of COPY (issue: the registry import)
PROVINCES = [42, 1, 79, 40, 38, 26, 27, 30, 31, 33, 34, 35, 36, 37]


def add_arguments(parser):
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated file")
    parser.add_argument("--copy-rows", type=int, default=0, help="rows per COPY sample (default: --rows)")
    parser.add_argument("--keep", action="store_true", help="keep the imported rows")
    parser.add_argument("--seed", type=int, default=20251030)
    parser.add_argument("--repeat", type=int, default=1, help="imports of the same file; the median is reported")


def generate(path: str, rows: int, communes: list[int], seed: int) -> dict:
    rnd = random.Random(seed)
    bad = dups = 0
    base = date(1935, 1, 1)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(HEADER)
        i = 0
        household = 0
        lines = []
        prev = None
        while i < rows:
            household += 1
            commune = rnd.choice(communes)
            klass = rnd.choice(CLASSES)
            size = rnd.randint(1, 6)
            for k in range(min(size, rows - i)):
                sex = rnd.choice(("male", "female"))
                dob = base + timedelta(days=rnd.randint(0, 32000))
                name = f"{rnd.choice(FAMILY)} {rnd.choice(MIDDLE[sex])} {rnd.choice(GIVEN)}"
                prov = PROVINCES[(i // 1_000_000) % len(PROVINCES)]
                digit = (dob.year // 100 - 19) * 2 + (sex == "female")
                pid = f"{prov:03d}{digit}{dob.year % 100:02d}{i % 1_000_000:06d}"
                sex_vi = "Nam" if sex == "male" else "Nữ"
                code = commune
                roll = rnd.random()
                if roll < 0.02:  # a bad row: one of the usual mistakes
                    bad += 1
                    kind = i % 4
                    if kind == 0:
                        dob = (
                            dob.replace(year=dob.year - 1) if dob.month != 2 or dob.day != 29 else dob - timedelta(400)
                        )
                    elif kind == 1:
                        pid = pid[:10]
                    elif kind == 2:
                        code = 999_999
                    else:
                        sex_vi = "?"
                elif roll < 0.03 and prev:  # a near-duplicate of the previous person (new ID)
                    dups += 1
                    name, dob_text, sex_vi, code = prev[1], prev[2], prev[3], int(prev[9])
                    d, m, y = dob_text.split("/")
                    dob = date(int(y), int(m), int(d))
                    s = "female" if sex_vi == "Nữ" else "male"
                    digit = (dob.year // 100 - 19) * 2 + (s == "female")
                    pid = f"{prov:03d}{digit}{dob.year % 100:02d}{i % 1_000_000:06d}"
                student = "x" if 2005 <= dob.year <= 2019 and rnd.random() < 0.5 else ""
                line = (
                    f"BENCH-{household},{name},{dob:%d/%m/%Y},{sex_vi},{pid},,Kinh,{RELATIONS[min(k, 5)]},"
                    f"Thôn {household % 40 + 1},{code},{klass},{student}"
                )
                lines.append(line)
                prev = line.split(",") if roll >= 0.02 else None
                i += 1
            if len(lines) >= 50_000:
                fh.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            fh.write("\n".join(lines) + "\n")
    return {"bad_rows": bad, "near_duplicates": dups}


def _cleanup(cursor):
    cursor.execute(
        """
        DELETE FROM beneficiaries_membertransition WHERE member_id IN (
            SELECT m.id FROM beneficiaries_member m JOIN beneficiaries_household h ON h.id = m.household_id
            WHERE h.external_ref LIKE 'BENCH-%%')
        """
    )
    cursor.execute(
        """DELETE FROM beneficiaries_member WHERE household_id IN (
            SELECT id FROM beneficiaries_household WHERE external_ref LIKE 'BENCH-%%')"""
    )
    cursor.execute("DELETE FROM beneficiaries_household WHERE external_ref LIKE 'BENCH-%%'")
    # Repeated runs would otherwise measure inserts into ever more bloated tables and indexes.
    for table in ("beneficiaries_membertransition", "beneficiaries_member", "beneficiaries_household"):
        cursor.execute(f"VACUUM (ANALYZE) {table}")


def file_copy_rate(path: str) -> float:
    """Rows/s of PostgreSQL's COPY of the generated file itself into a temporary table of its
    own columns (text, no constraints or indexes): the other reading of "the same run's COPY
    rate" (the narrow three-column table of `limits.copy_rate` is the engine's upper bound).
    Median of 3; nothing is kept."""
    with open(path, encoding="utf-8") as fh:
        columns = len(next(csv.reader(fh)))
    samples = []
    for _ in range(3):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE bench_file_copy ({', '.join(f'c{i} text' for i in range(columns))}) ON COMMIT DROP"
            )
            t0 = time.perf_counter()
            with (
                open(path, "rb") as fh,
                cursor.cursor.copy("COPY bench_file_copy FROM STDIN (FORMAT csv, HEADER true)") as cp,
            ):
                while chunk := fh.read(1 << 20):
                    cp.write(chunk)
            seconds = time.perf_counter() - t0
            cursor.execute("SELECT count(*) FROM bench_file_copy")
            samples.append(cursor.fetchone()[0] / seconds)
    return statistics.median(samples)


def _backend_cpu() -> float:
    """CPU seconds used so far by this connection's server process (embedded server only)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(options, out) -> dict:
    from beneficiaries.models import ImportJob, Level, Locality, Member, Scheme
    from beneficiaries.services.imports import LAST_TIMINGS, import_job_run
    from donors.models import Role, User

    rows = options["rows"]
    communes = list(
        Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.COMMUNE)
        .order_by("code")
        .values_list("code", flat=True)[:300]
    )
    if not communes:
        raise SystemExit("No localities loaded: run ./chungtay manage bootstrap --no-demo first.")
    user = User.objects.filter(email="benchmark@chungtay.test").first() or User.objects.create_user(
        "benchmark@chungtay.test", None, role=Role.ADMIN, full_name="Benchmark"
    )
    os.makedirs(os.path.join(settings.MEDIA_ROOT, "imports"), exist_ok=True)
    relative = f"imports/benchmark-{rows}.csv"
    path = os.path.join(settings.MEDIA_ROOT, relative)
    with Stopwatch() as gen:
        shape = generate(path, rows, communes, options["seed"])
    with connection.cursor() as cursor:
        _cleanup(cursor)
    samples, timings, cpu_samples = [], {}, []
    for _ in range(options["repeat"]):
        with connection.cursor() as cursor:
            _cleanup(cursor)
        job = ImportJob.objects.create(created_by=user, file=relative, original_name="benchmark.csv")
        cpu0 = _backend_cpu()
        with Stopwatch() as sw:
            job = import_job_run(job_id=job.pk)
        cpu_samples.append(_backend_cpu() - cpu0)
        if job.status != "done":
            raise SystemExit(f"import failed: {job.error}")
        samples.append(sw.seconds)
        timings = {k: round(v, 2) for k, v in sorted(LAST_TIMINGS.items(), key=lambda kv: -kv[1]) if v >= 0.05}
    seconds = statistics.median(samples)
    flagged = Member.objects.filter(household__external_ref__startswith="BENCH-", is_possible_duplicate=True).count()
    copy = copy_rate(options["copy_rows"] or rows)
    copy_file = file_copy_rate(path)
    # The import's own output (the last run's households and members) written into empty copies
    # of their tables: what the engine needs for the writes alone (floor.py).
    bench = "external_ref LIKE %(ref)s"
    floor = write_floor(
        [
            ("beneficiaries_household", bench, {"ref": "BENCH-%"}),
            ("beneficiaries_member", f"household_id IN (SELECT id FROM beneficiaries_household WHERE {bench})",
             {"ref": "BENCH-%"}),
        ]
    )  # fmt: skip
    file_mb = round(os.path.getsize(path) / 2**20, 1)
    if not options["keep"]:
        with connection.cursor() as cursor:
            _cleanup(cursor)
        os.remove(path)
    rate = rows / seconds
    return {
        "rows": rows,
        "file_mb": file_mb,
        "generate_s": round(gen.seconds, 2),
        "repeat": options["repeat"],
        "import_s_samples": [round(x, 2) for x in samples],
        "import_s": round(seconds, 2),
        # CPU seconds of the PostgreSQL backend that ran the import (NaN when the server is not
        # on this machine): on a shared box, the part of the wall time that was the import's.
        "backend_cpu_s_samples": [round(x, 2) for x in cpu_samples],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "import_rows_per_s": round(rate),
        "copy_rows_per_s": round(copy),
        "ratio_to_copy": round(rate / copy, 4),
        "copy_file_rows_per_s": round(copy_file),
        "ratio_to_copy_file": round(rate / copy_file, 4),
        "write_floor_s": round(floor["seconds"], 3),
        "write_floor_s_samples": floor["samples"],
        "write_floor_rows": floor["rows"],
        "write_floor_ratio_to_copy": round(rows / floor["seconds"] / copy, 4),
        "write_floor_ratio_to_copy_file": round(rows / floor["seconds"] / copy_file, 4),
        "seconds_at_goal": round(rows / (GOAL * copy), 2),
        "seconds_at_goal_file": round(rows / (GOAL * copy_file), 2),
        "rows_created": job.rows_created,
        "rows_failed": job.rows_failed,
        "expected_bad_rows": shape["bad_rows"],
        "near_duplicates_generated": shape["near_duplicates"],
        "members_flagged_near_duplicate": flagged,
        "seconds_by_step": timings,
    }


def rows(figures: dict) -> list[tuple[str, str]]:
    return [
        ("Rows in file", f"{figures['rows']:,}"),
        ("Import wall time (s, median)", f"{figures['import_s']:.2f} of {figures['import_s_samples']}"),
        ("Import rows/s", f"{figures['import_rows_per_s']:,}"),
        ("PostgreSQL backend CPU (s)", f"{figures['backend_cpu_s_samples']}"),
        ("Load average (1, 5, 15 min)", f"{figures['load_average']}"),
        ("COPY rows/s (same run)", f"{figures['copy_rows_per_s']:,}"),
        ("Import / COPY", f"{figures['ratio_to_copy']:.1%} (goal ≥ 6%)"),
        ("COPY of this file into text columns (rows/s, median of 3)", f"{figures['copy_file_rows_per_s']:,}"),
        ("Import / COPY of this file", f"{figures['ratio_to_copy_file']:.1%} (goal ≥ 6%)"),
        (
            "Writing the output alone (households + members into empty copies of their tables, s, median of 3)",
            f"{figures['write_floor_s']:.2f} of {figures['write_floor_s_samples']}",
        ),
        (
            "  as a share of COPY, if nothing else took time (goal ≥ 6%)",
            f"{figures['write_floor_ratio_to_copy']:.1%} (of this file's COPY: "
            f"{figures['write_floor_ratio_to_copy_file']:.1%})",
        ),
        (
            "  the whole import at 6% of COPY would take (s)",
            f"{figures['seconds_at_goal']:.2f} (of this file's COPY: {figures['seconds_at_goal_file']:.2f})",
        ),
        ("Members created", f"{figures['rows_created']:,}"),
        ("Rows refused (generated bad)", f"{figures['rows_failed']:,} ({figures['expected_bad_rows']:,})"),
        (
            "Flagged near-duplicates (pairs generated)",
            f"{figures['members_flagged_near_duplicate']:,} ({figures['near_duplicates_generated']:,})",
        ),
        *((f"  {step} (s)", f"{sec:.2f}") for step, sec in figures["seconds_by_step"].items()),
    ]
