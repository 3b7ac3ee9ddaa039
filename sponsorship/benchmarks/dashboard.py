"""Agency dashboard: p50/p95 of the dashboard API (all provinces; one province's communes)
against the bare rollup query, in the same run. Goal: p50 ≤ 50 ms and ≤ 20× the bare query.

The dashboard reads only the rollup table, whose size is bounded by communes × months × types
(not by the number of enrollments). The benchmark therefore writes the rollup rows that N
enrollments (default 10,000,000) spread over every 2025 commune, 12 months and both types
produce, under a throw-away year (2099) with a target per province, times the reads, and
deletes what it wrote. It does not create N cards nor time the recompute itself."""

import random
import statistics
import time

from django.db import connection, transaction

BENCH_YEAR = 2099
BENCH_EMAIL = "bench-dashboard@chungtay.invalid"


def add_arguments(parser):
    parser.add_argument("--enrollments", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=60)


def _cleanup():
    from donors.models import User
    from sponsorship.enrollment.models import EnrollmentRollup, Target

    EnrollmentRollup.objects.filter(year=BENCH_YEAR).delete()
    Target.objects.filter(year=BENCH_YEAR).delete()
    User.objects.filter(email=BENCH_EMAIL).delete()


def _seed(n: int) -> int:
    from beneficiaries.models import Level, Locality, Scheme
    from sponsorship.enrollment.models import EnrollmentRollup, Target

    rng = random.Random(6)
    communes = list(
        Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.COMMUNE).values_list("id", "province_id")
    )
    if not communes:
        raise RuntimeError("No 2025 communes: run `./chungtay manage load_localities` first.")
    cells = len(communes) * 12 * 2
    per_cell = max(n // cells, 1)
    rows, province_totals = [], {}
    for commune_id, province_id in communes:
        for type_ in ("hi", "si_voluntary"):
            for month in range(1, 13):
                new = rng.randint(0, 2 * per_cell)
                ren = rng.randint(0, per_cell)
                rows.append(
                    EnrollmentRollup(
                        locality_id=commune_id,
                        province_id=province_id,
                        level="commune",
                        year=BENCH_YEAR,
                        month=month,
                        type=type_,
                        new_enrollments=new,
                        renewals=ren,
                        raised_vnd=new * 379_080,
                        pending_vnd=rng.randint(0, 10) * 379_080,
                    )
                )
                t = province_totals.setdefault((province_id, type_, month), [0, 0, 0, 0])
                t[0] += new
                t[1] += ren
                t[2] += new * 379_080
                t[3] += rows[-1].pending_vnd
    for (province_id, type_, month), (new, ren, raised, pending) in province_totals.items():
        rows.append(
            EnrollmentRollup(
                locality_id=province_id,
                province_id=province_id,
                level="province",
                year=BENCH_YEAR,
                month=month,
                type=type_,
                new_enrollments=new,
                renewals=ren,
                raised_vnd=raised,
                pending_vnd=pending,
            )
        )
    with transaction.atomic():
        EnrollmentRollup.objects.bulk_create(rows, batch_size=5000)
        Target.objects.bulk_create(
            Target(locality_id=p, year=BENCH_YEAR, type="hi", number=2_000_000, baseline=1_900_000, source="benchmark")
            for p in {p for _c, p in communes}
        )
    with connection.cursor() as cur:
        cur.execute("ANALYZE sponsorship_enrollmentrollup")
    return len(rows)


def _times(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


BARE = (
    "SELECT locality_id, month, SUM(new_enrollments), SUM(renewals), SUM(raised_vnd), SUM(pending_vnd) "
    "FROM sponsorship_enrollmentrollup WHERE year = %s AND type = %s AND level = %s {extra} "
    "GROUP BY locality_id, month"
)


def run(options, out) -> dict:
    from django.test import Client

    from donors.models import Role, User

    n, repeat = options["enrollments"], options["repeat"]
    _cleanup()
    try:
        out.write(f"writing the rollups of {n:,} enrollments…\n")
        rollup_rows = _seed(n)
        user = User.objects.create_user(BENCH_EMAIL, None, role=Role.FINANCE, full_name="benchmark")
        from django.conf import settings

        hosts = [h.lstrip(".") for h in settings.ALLOWED_HOSTS if h != "*"] or ["localhost"]
        client = Client(HTTP_HOST=hosts[0])
        client.force_login(user)
        from beneficiaries.models import Level, Locality, Scheme

        province_id = Locality.objects.get(scheme=Scheme.CURRENT, level=Level.PROVINCE, code=1).pk

        def api_all():
            r = client.get("/api/enrollment/dashboard/", {"year": BENCH_YEAR, "type": "hi"})
            assert r.status_code == 200 and len(r.json()["rows"]) >= 34, r.status_code

        def api_one():
            r = client.get("/api/enrollment/dashboard/", {"year": BENCH_YEAR, "type": "hi", "province": province_id})
            assert r.status_code == 200 and r.json()["rows"], r.status_code

        def bare_all():
            with connection.cursor() as cur:
                cur.execute(BARE.format(extra=""), [BENCH_YEAR, "hi", "province"])
                cur.fetchall()

        def bare_one():
            with connection.cursor() as cur:
                cur.execute(BARE.format(extra="AND province_id = %s"), [BENCH_YEAR, "hi", "commune", province_id])
                cur.fetchall()

        figures = {"enrollments": n, "rollup_rows": rollup_rows, "repeat": repeat}
        for name, api, bare in (("all", api_all, bare_all), ("province", api_one, bare_one)):
            p50, p95 = _times(api, repeat)
            b50, b95 = _times(bare, repeat)
            figures[f"api_{name}_p50_ms"] = round(p50, 2)
            figures[f"api_{name}_p95_ms"] = round(p95, 2)
            figures[f"bare_{name}_p50_ms"] = round(b50, 3)
            figures[f"bare_{name}_p95_ms"] = round(b95, 3)
            figures[f"ratio_{name}_p50"] = round(p50 / b50, 1) if b50 else None
        figures["goal_met"] = all(
            figures[f"api_{k}_p50_ms"] <= 50 and (figures[f"ratio_{k}_p50"] or 0) <= 20 for k in ("all", "province")
        )
        return figures
    finally:
        _cleanup()


def rows(figures: dict) -> list[tuple[str, str]]:
    out = [
        ("enrollments (rollup source)", f"{figures['enrollments']:,}"),
        ("rollup rows", f"{figures['rollup_rows']:,}"),
    ]
    for k in ("all", "province"):
        out.append((f"API {k} p50 / p95 (ms)", f"{figures[f'api_{k}_p50_ms']} / {figures[f'api_{k}_p95_ms']}"))
        out.append((f"bare {k} p50 / p95 (ms)", f"{figures[f'bare_{k}_p50_ms']} / {figures[f'bare_{k}_p95_ms']}"))
        out.append((f"ratio {k} p50", f"{figures[f'ratio_{k}_p50']}×"))
    out.append(("goal met", str(figures["goal_met"])))
    return out
