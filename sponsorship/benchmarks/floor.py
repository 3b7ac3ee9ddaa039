"""The write floor of a benchmark: how long PostgreSQL takes only to write the rows the run
wrote, into empty copies of their tables, in the same run as the COPY rate it is compared with.

The import and the matcher are judged by their rate as a share of COPY (6 % and 10 %). Whatever
they do besides, they must at least insert their output (members and households; cards and
allocations) into tables with those columns, constraints and indexes. If that alone is already
below the goal's share of COPY, no validation, pricing or pairing, however fast, reaches the
goal with this output on this machine. The floor says how far the goal is from what the engine
allows, so the figures can be read as "the matcher's own work costs X on top of the writes".

It is a lower bound on purpose: the copies have the tables' columns, defaults, check and unique
constraints and indexes (`LIKE … INCLUDING ALL`), but no foreign keys and no triggers (the
allocation guard), the rows keep their ids (no sequence), and they are read from a temporary
table already in memory. The copies are ordinary, logged tables like the real ones. Everything
is rolled back.
"""

import statistics
import time

from django.db import connection, transaction


def write_floor(sources: list[tuple[str, str, dict | None]], repeat: int = 3) -> dict:
    """Median seconds to insert, in one transaction, the rows of each (table, where, params) of
    `sources` (in id order, in the order given) into an empty copy of that table. Returns
    {"seconds": median, "samples": [...], "rows": {table: rows}, "indexes": {table: indexes of
    the copy}}; nothing is kept."""
    samples, rows, indexes = [], {}, {}
    for _ in range(repeat):
        with transaction.atomic(), connection.cursor() as cur:
            for i, (table, where, params) in enumerate(sources):
                cur.execute(
                    f"CREATE TEMP TABLE bench_floor_src{i} ON COMMIT DROP AS "
                    f"SELECT * FROM {table} WHERE {where} ORDER BY id",
                    params,
                )
                cur.execute(f"CREATE TABLE bench_floor_{i} (LIKE {table} INCLUDING ALL)")
                cur.execute("SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", [f"bench_floor_{i}"])
                indexes[table] = cur.fetchone()[0]
            seconds = 0.0
            for i, (table, _where, _params) in enumerate(sources):
                t0 = time.perf_counter()
                cur.execute(f"INSERT INTO bench_floor_{i} SELECT * FROM bench_floor_src{i}")
                seconds += time.perf_counter() - t0
                rows[table] = cur.rowcount
            samples.append(seconds)
            transaction.set_rollback(True)  # the copies and their rows go with the transaction
    samples_s = [round(s, 3) for s in samples]
    return {"seconds": statistics.median(samples), "samples": samples_s, "rows": rows, "indexes": indexes}
