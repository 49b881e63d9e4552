"""Progress of the jobs running in this process, as it happens (in memory).

A runner reports every step here; the database hears of it at most once per
``HEARTBEAT_EVERY`` (on PostgreSQL), so a page served by this process shows the freshest
figure and a page served by another process the last one written. On SQLite a running
import holds the one write lock, so its progress lives here alone until it ends.
"""

from __future__ import annotations

import threading

from meterpay.jobs.model import Progress


class LiveProgress:
    """Job id -> its latest progress, safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: dict[int, Progress] = {}

    def put(self, job_id: int, progress: Progress) -> None:
        with self._lock:
            self._now[job_id] = progress

    def get(self, job_id: int) -> Progress | None:
        with self._lock:
            return self._now.get(job_id)

    def drop(self, job_id: int) -> None:
        with self._lock:
            self._now.pop(job_id, None)
