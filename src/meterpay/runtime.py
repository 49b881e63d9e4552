"""What a running meterpay process hands to its services: database, clock, settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from meterpay.config import Settings
from meterpay.db.engine import Database
from meterpay.db.partitions import PartitionKeeper
from meterpay.kernel.clock import Clock


@dataclass
class Runtime:
    db: Database
    clock: Clock
    settings: Settings
    partitions: PartitionKeeper = field(default_factory=PartitionKeeper)
