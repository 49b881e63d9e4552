"""Readings/s through the DTU listener, against a raw ``COPY`` of the same rows.

``python -m bench.dtu`` (part of ``make bench``) sets up, on a scratch PostgreSQL
database, 1,000 electricity meters (DL/T 645-2007, each with its own prepaid
account on a flat tariff) behind 50 registered DTUs; starts meterpay's DTU
listener in this process; and starts 50 simulated DTUs with their simulated
meters in a second process, which dial the listener over real TCP sockets.
The listener polls every meter back to back (the poll schedule sped up until
it never waits): per reading three DL/T 645 requests and replies on the
meter's bus (total, TOU block, voltage), every frame logged, then validation,
pricing, the ledger and the commit, in batches by the link sink.

Timed: from the moment every DTU is connected until ``--readings`` readings
are committed. The baseline is a raw psycopg ``COPY`` of the same number of
reading rows into a table like ``readings``, in the same run (median of 3).
Afterwards (not timed): ``verify_ledger`` must be clean and every stored
reading valid.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy import func, select, update

from bench.ingest import ACTOR, Workload, scratch_database, set_up_fleet, time_copy
from meterpay.config import Settings
from meterpay.db.engine import Database
from meterpay.db.migrate import upgrade
from meterpay.db.schema import meters, readings
from meterpay.drivers.models import bundled_models
from meterpay.kernel.clock import SystemClock
from meterpay.ledger.service import verify_ledger
from meterpay.links.dtu_bus import BusTimings
from meterpay.links.dtu_server import DtuServer, DtuSettings
from meterpay.links.sink import LinkSink
from meterpay.metering import link_service as links
from meterpay.metering.gateways import Transport
from meterpay.runtime import Runtime
from meterpay.sim.dtu import DtuSettings as SimDtuSettings
from meterpay.sim.dtu import SimulatedFleet, imei_like
from meterpay.sim.meters import meter_for
from meterpay.sites import service as sites

MODEL = "generic-645-2007-no-switch"
FLAT_OUT = BusTimings(reply_timeout_s=2.0, retries=1, idle_timeout_s=120, poll_speed=1e6)


def _runtime(url: str) -> Runtime:
    rt = Runtime(db=Database(url), clock=SystemClock(), settings=Settings(database_url=url))
    upgrade(rt.db, rt.clock)
    return rt


def attach_dtus(rt: Runtime, meter_ids: Sequence[int], dtus: int) -> list[str]:
    """``dtus`` registered DTUs on the bench site, meters shared out in runs (setup)."""
    [site] = sites.page(rt, "sites", after_id=None, limit=1, code="BENCH")
    codes = [imei_like(n) for n in range(1, dtus + 1)]
    per = -(-len(meter_ids) // dtus)
    for n, code in enumerate(codes):
        gateway = links.create_gateway(
            rt, site_id=site.id, code=code, name=code, transport=Transport.DTU, actor=ACTOR
        )
        with rt.db.write() as conn:
            ids = list(meter_ids[n * per : (n + 1) * per])
            # Polls come back to back, not every 15 minutes, so the simulated meters run 600
            # times faster than real time to give each reading a realistic consumption: no
            # rated maximum, or every reading would look like a spike.
            conn.execute(
                update(meters)
                .where(meters.c.id.in_(ids))
                .values(gateway_id=gateway.id, max_rate_per_hour=None)
            )
    return codes


def _fleet_process(port: int, codes: list[str], openings: list[str], stop: Any) -> None:
    """Second process: the simulated DTUs and meters, until ``stop`` is set."""
    model = bundled_models()[MODEL]
    sim_meters = [
        meter_for(model, f"{n + 1:012d}", speed=600, opening=Decimal(o), seed=n)
        for n, o in enumerate(openings)
    ]
    settings = SimDtuSettings(heartbeat_seconds=30, split_chance=0.0)

    async def main() -> None:
        async with SimulatedFleet.spread("127.0.0.1", port, codes, sim_meters, settings=settings):
            while not stop.is_set():
                await asyncio.sleep(0.2)

    asyncio.run(main())


def _stored(rt: Runtime) -> int:
    with rt.db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(readings).where(readings.c.source == "dtu")
            ).scalar_one()
        )


async def _timed(
    rt: Runtime, codes: list[str], openings: list[str], target: int, *, log_frames: bool
) -> float:
    sink = LinkSink(rt, actor="dtu", batch_size=2000, flush_seconds=0.2, log_frames=log_frames)
    sink.start()
    server = DtuServer(rt, sink, DtuSettings(port=0, timings=FLAT_OUT))
    await server.start()
    stop = multiprocessing.Event()
    fleet = multiprocessing.Process(
        target=_fleet_process, args=(server.port, codes, openings, stop), daemon=True
    )
    fleet.start()
    try:
        deadline = time.monotonic() + 120
        while len(server.buses) < len(codes):
            if time.monotonic() > deadline or not fleet.is_alive():
                raise RuntimeError(f"only {len(server.buses)} of {len(codes)} DTUs connected")
            await asyncio.sleep(0.05)
        started, before = time.perf_counter(), await asyncio.to_thread(_stored, rt)
        deadline = time.monotonic() + 900
        while await asyncio.to_thread(_stored, rt) - before < target:
            if time.monotonic() > deadline:
                raise RuntimeError("the DTU run did not finish in 15 minutes")
            await asyncio.sleep(0.1)
        return time.perf_counter() - started
    finally:
        stop.set()
        fleet.join(30)
        await server.stop()
        await asyncio.to_thread(sink.stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dtu", description=__doc__)
    parser.add_argument("--meters", type=int, default=1_000)
    parser.add_argument("--dtus", type=int, default=50)
    parser.add_argument("--readings", type=int, default=10_000)
    parser.add_argument(
        "--no-frame-log", action="store_true", help="keep no raw frames (MP_DTU_LOG_FRAMES=false)"
    )
    args = parser.parse_args(argv)
    intervals = -(-args.readings // args.meters)
    work = Workload.generate(args.meters, intervals, datetime.now(UTC), 9000)
    with scratch_database() as (name, url):
        rt = _runtime(url)
        try:
            print(
                f"bench.dtu: {args.meters:,} DL/T 645 meters behind {args.dtus} simulated DTUs"
                f" (another process, real TCP), polled back to back by the DTU listener,"
                f" until {args.readings:,} readings are committed; scratch database {name}"
            )
            fleet = set_up_fleet(rt, work)
            codes = attach_dtus(rt, fleet.meter_ids, args.dtus)
            openings = [
                str(v.quantize(Decimal("0.01"), rounding=ROUND_CEILING)) for v in work.initial
            ]
            seconds = asyncio.run(
                _timed(rt, codes, openings, args.readings, log_frames=not args.no_frame_log)
            )
            rate = args.readings / seconds
            batches = work.batches(fleet.meter_ids, 2_000, range(intervals))
            copy = time_copy(url, batches, rt.clock.now())
            copy_rate = copy.readings / copy.seconds
            violations = verify_ledger(rt)
            with rt.db.read() as conn:
                bad = dict(
                    conn.execute(
                        select(readings.c.flags, func.count())
                        .where(readings.c.source == "dtu", readings.c.quality != "valid")
                        .group_by(readings.c.flags)
                    ).all()
                )
        finally:
            rt.db.dispose()
    print(f"  PostgreSQL COPY (median of 3)       {copy_rate:>10,.0f} readings/s")
    print(
        f"  through the DTU listener            {rate:>10,.0f} readings/s"
        f"  ratio ours/COPY {rate / copy_rate:.4f}"
        f"  ({args.readings:,} readings in {seconds:.1f} s, 3 requests each)"
    )
    print(f"  verify_ledger: {violations or 'clean ([])'}; readings not valid: {bad}")
    return 0 if not violations and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
