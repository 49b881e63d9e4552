"""Readable domain data for the notification tests: a home whose owner can be reached."""

from __future__ import annotations

from dataclasses import dataclass

from meterpay.config import Settings
from meterpay.kernel.clock import FixedClock
from meterpay.notify import service as notify
from meterpay.notify.channels import Channels, channels_from
from meterpay.notify.model import Language
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from tests.integration.builders import ACTOR, Home, a_home


@dataclass
class Reachable:
    home: Home
    customer_id: int

    @property
    def account_id(self) -> int:
        return self.home.account.id

    @property
    def site_id(self) -> int:
        return self.home.site.id


def a_reachable_home(
    rt: Runtime,
    *,
    phone: str | None = None,
    email: str | None = None,
    openid: str | None = None,
    language: Language = Language.ZH_CN,
) -> Reachable:
    """A home whose account belongs to 王芳, reachable on the contacts given."""
    home = a_home(rt)
    customer = sites.create_customer(
        rt,
        site_id=home.site.id,
        name="王芳",
        phone=phone,
        email=email,
        wechat_openid=openid,
        actor=ACTOR,
    )
    sites.update_account(rt, home.account.id, customer_id=customer.id, actor=ACTOR)
    notify.set_language(rt, customer_id=customer.id, language=language)
    return Reachable(home, customer.id)


def clock_of(rt: Runtime) -> FixedClock:
    assert isinstance(rt.clock, FixedClock)
    return rt.clock


def channels_for(rt: Runtime, **settings: object) -> Channels:
    """The channels ``settings`` configure (on top of the test database's settings)."""
    return channels_from(Settings(database_url=rt.settings.database_url, **settings))  # type: ignore[arg-type]
