"""What the configured engines can do at best on this machine, measured in the same run
as any other benchmark so that its figures can be printed as ratios to these."""

import time

from django.core.cache import cache
from django.db import connection

from .report import Stopwatch, median_rate


def add_arguments(parser):
    parser.add_argument("--rows", type=int, default=500_000, help="rows per COPY sample")
    parser.add_argument("--ops", type=int, default=20_000, help="Redis operations per sample")
    parser.add_argument("--repeat", type=int, default=3, help="samples; the median is reported")


def copy_rate(rows: int, repeat: int = 3) -> float:
    """COPY rows/s into a narrow unlogged table (bigint, bigint, text)."""
    buf = "".join(f"{i}\t{i * 7 % 1_000_000}\tref{i}\n" for i in range(rows)).encode()
    samples = []
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy_limit")
        cursor.execute("CREATE UNLOGGED TABLE bench_copy_limit (id bigint, amount bigint, ref text)")
        try:
            raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper
            for _ in range(repeat):
                cursor.execute("TRUNCATE bench_copy_limit")
                with Stopwatch() as sw:
                    with raw.copy("COPY bench_copy_limit (id, amount, ref) FROM STDIN") as copy:
                        view = memoryview(buf)
                        for start in range(0, len(view), 1 << 20):
                            copy.write(view[start : start + (1 << 20)])
                samples.append((rows, sw.seconds))
        finally:
            cursor.execute("DROP TABLE IF EXISTS bench_copy_limit")
    return median_rate(samples)


def redis_rates(ops: int, repeat: int = 3) -> dict[str, float]:
    client = cache._cache.get_client(write=True)
    round_trip, pipelined = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(ops // 10):
            client.set(f"bench:limit:{i % 100}", i)
        round_trip.append((ops // 10, time.perf_counter() - t0))
        t0 = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for i in range(ops):
            pipe.set(f"bench:limit:{i % 100}", i)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        pipelined.append((ops, time.perf_counter() - t0))
    client.delete(*[f"bench:limit:{i}" for i in range(100)])
    return {"redis_roundtrip_ops_per_s": median_rate(round_trip), "redis_pipelined_ops_per_s": median_rate(pipelined)}


def run(options, out) -> dict:
    figures = {"copy_rows_per_s": copy_rate(options["rows"], options["repeat"])}
    figures.update(redis_rates(options["ops"], options["repeat"]))
    figures["copy_rows"] = options["rows"]
    figures["repeat"] = options["repeat"]
    return figures


def rows(figures: dict) -> list[tuple[str, str]]:
    return [
        ("PostgreSQL COPY (rows/s, median)", f"{figures['copy_rows_per_s']:,.0f}"),
        ("Redis SET round trip (ops/s)", f"{figures['redis_roundtrip_ops_per_s']:,.0f}"),
        ("Redis SET pipelined (ops/s)", f"{figures['redis_pipelined_ops_per_s']:,.0f}"),
    ]
