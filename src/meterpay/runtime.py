"""What a running meterpay process hands to its services: database, clock, settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from meterpay.config import Settings
from meterpay.db.engine import Database
from meterpay.db.partitions import PartitionKeeper
from meterpay.jobs.live import LiveProgress
from meterpay.kernel.clock import Clock
from meterpay.payments.merchants import MerchantBook
from meterpay.payments.provider import PaymentProvider, ProviderName


@dataclass
class Runtime:
    db: Database
    clock: Clock
    settings: Settings
    partitions: PartitionKeeper = field(default_factory=PartitionKeeper)
    payments: dict[ProviderName, PaymentProvider] = field(default_factory=dict)
    """The default merchant of each payment provider this process talks to (``bootstrap``)."""
    merchants: MerchantBook = field(default_factory=MerchantBook)
    """The sites' own merchants (``MP_PAYMENT_MERCHANTS_FILE``)."""
    live_jobs: LiveProgress = field(default_factory=LiveProgress)
    """The progress of the background jobs this process runs (``meterpay.jobs``)."""
