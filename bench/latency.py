"""Latency samples, their percentiles, and the baseline the benches compare them with:
a bare single-row ``INSERT`` + ``COMMIT`` round trip on the same database in the same
run (the shared machine moves absolute times from run to run; ratios to a baseline
sampled beside them move much less)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from bench.ingest import psycopg_conninfo


@dataclass
class Figure:
    """One measured quantity: its samples, in seconds."""

    label: str
    seconds: list[float] = field(default_factory=list)

    def p(self, q: int) -> float:
        """The q-th percentile in milliseconds (inclusive method: p99 of 400 samples
        lies between the 4th and 5th worst)."""
        if len(self.seconds) < 2:
            return self.seconds[0] * 1000 if self.seconds else float("nan")
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[q - 1] * 1000


def row(figure: Figure, baseline: Figure | None = None) -> str:
    """A table line: samples, p50, p99 (ms) and, against ``baseline``, their ratios."""
    line = (
        f"  {figure.label:<46}{len(figure.seconds):>6,}{figure.p(50):>10.1f}{figure.p(99):>10.1f}"
    )
    if baseline is not None:
        line += f"{figure.p(50) / baseline.p(50):>10.1f}x{figure.p(99) / baseline.p(99):>9.1f}x"
    return line


class InsertProbe:
    """The baseline: a bare single-row INSERT + COMMIT on a plain table, over psycopg."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(psycopg_conninfo(url))
        self._conn.execute(
            "CREATE TABLE latency_probe (id bigserial PRIMARY KEY,"
            " at timestamptz NOT NULL DEFAULT now())"
        )
        self._conn.commit()

    def sample(self, into: Figure) -> None:
        started = time.perf_counter()
        self._conn.execute("INSERT INTO latency_probe DEFAULT VALUES")
        self._conn.commit()
        into.seconds.append(time.perf_counter() - started)

    def close(self) -> None:
        self._conn.close()


def timed(into: Figure, call: Callable[[], object]) -> None:
    """Time one call (its result is checked afterwards, not here)."""
    started = time.perf_counter()
    call()
    into.seconds.append(time.perf_counter() - started)
