import json
import statistics
import time


def median_rate(samples: list[tuple[int, float]]) -> float:
    """Median of count/seconds over repeated runs (machines here are noisy)."""
    return statistics.median(n / s for n, s in samples if s > 0)


class Stopwatch:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def print_table(out, title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    out.write(f"\n{title}\n" + "-" * len(title))
    for key, value in rows:
        out.write(f"{key:<{width}}  {value}")


def print_json(out, figures: dict) -> None:
    out.write(json.dumps(figures, sort_keys=True, default=str))
