"""meterpay served over a real socket for a browser: uvicorn on a free port of 127.0.0.1
in a background thread, on a migrated SQLite file, with real time, the payment sandbox
on, and a background job runner beside it (imports and exports run as jobs). The
runtime's ``public_url`` is the server's own address, so links the app builds (the
sandbox's pay page, notification URLs) lead back to it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from meterpay.config import Settings
from meterpay.db.engine import Database
from meterpay.db.migrate import upgrade
from meterpay.jobs.service import run_next
from meterpay.kernel.clock import SystemClock
from meterpay.payments.setup import with_sandbox
from meterpay.runtime import Runtime
from meterpay.web.app import create_app
from meterpay.web.console.job_pages import job_handlers

START_TIMEOUT_S = 10


@dataclass
class LiveApp:
    """meterpay serving at ``url``; ``rt`` is the runtime it serves (seed through it)."""

    url: str
    rt: Runtime


def live_runtime(database: Path, url: str) -> Runtime:
    """A migrated SQLite file (shared by the server's thread and the test), the system
    clock, and the sandbox answering at ``url``."""
    db_url = f"sqlite:///{database}"
    clock = SystemClock()
    # no SMS gateway here: an owner's sign-in code is shown on the page, as in the demo
    settings = Settings(database_url=db_url).model_copy(
        update={"public_url": url, "show_sign_in_codes": True}
    )
    rt = Runtime(db=Database(db_url), clock=clock, settings=settings)
    upgrade(rt.db, clock)
    return with_sandbox(rt)


@contextmanager
def serving(database: Path) -> Iterator[LiveApp]:
    """meterpay on ``database`` until the block ends."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    rt = live_runtime(database, url)
    server = uvicorn.Server(uvicorn.Config(create_app(rt), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    stop_jobs = threading.Event()
    runner = threading.Thread(target=_run_jobs, args=(rt, stop_jobs), daemon=True)
    runner.start()
    try:
        _wait_until_started(server)
        yield LiveApp(url=url, rt=rt)
    finally:
        server.should_exit = True
        stop_jobs.set()
        thread.join(START_TIMEOUT_S)
        runner.join(START_TIMEOUT_S)
        listener.close()
        rt.db.dispose()


def _run_jobs(rt: Runtime, stop: threading.Event) -> None:
    """The job runner of ``meterpay serve``, in short: run what is queued, then wait."""
    handlers = job_handlers()
    while not stop.is_set():
        if not run_next(rt, handlers, runner="e2e"):
            stop.wait(0.2)


def _wait_until_started(server: uvicorn.Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError(f"uvicorn did not start within {START_TIMEOUT_S} s")
