"""An ASGI app served by ``uvicorn.run`` in a process of its own, on a free port of
127.0.0.1, as ``meterpay serve`` serves meterpay: a bench's clients then never share a GIL
with the server they measure, and the server's own CPU time can be read apart (/proc).

The app is built in the child (a spawned process imports nothing of the parent's state):
``serve(port, *args)`` must be a module-level function that builds it and calls
``uvicorn.run``. The process is ready once ``ready_path`` answers 200; it is stopped by
SIGTERM (uvicorn's graceful shutdown), killed if it does not go.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0  # seconds for the child to import, build its app and listen
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A port nobody listens on now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class ServedApp:
    """``with ServedApp(serve, args, ready_path="/") as app:`` — ``app.url`` until the block
    ends; ``app.cpu_seconds()`` is the server process's user + system time so far."""

    def __init__(
        self, serve: Callable[..., None], args: tuple[Any, ...], *, ready_path: str, name: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._ready_path = ready_path
        ctx = multiprocessing.get_context("spawn")
        self._process = ctx.Process(target=serve, args=(self.port, *args), name=name, daemon=True)

    def __enter__(self) -> ServedApp:
        self._process.start()
        try:
            self._wait_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.exitcode is not None:
                raise RuntimeError(f"{self._process.name} exited ({self._process.exitcode})")
            try:
                if httpx.get(self.url + self._ready_path, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.1)
        raise RuntimeError(f"{self._process.name} did not answer within {READY_TIMEOUT:.0f} s")

    def _stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(STOP_TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process (all its threads); None where
        /proc is not there to read."""
        try:
            with open(f"/proc/{self._process.pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # after the command name: state is field 3, utime 14, stime 15 (proc(5))
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
