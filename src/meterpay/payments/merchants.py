"""Which merchant takes a site's money: the sites' own merchants (a compound with its own
WeChat Pay 商户号 or Alipay application) and, for every other site, the deployment's
default merchant of each provider (``Runtime.payments``).

Invariants:
- a merchant code names one merchant of one provider; ``""`` is the default merchant;
- a site has at most one merchant of its own per provider; an order records the merchant
  that was asked for it, and only that merchant's verified notifications, queries and
  statements ever credit it (a notification signed with one merchant's keys never moves
  another merchant's order).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from meterpay.payments.provider import PaymentProvider, ProviderName
from meterpay.payments.wechat_oauth import WechatApp

DEFAULT: Final = ""
"""The code of a provider's default merchant (the ``MP_WECHAT_*`` / ``MP_ALIPAY_*`` one)."""
CODE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class MerchantBookError(ValueError):
    """The merchants do not fit together: a code twice, a site with two merchants."""


@dataclass(frozen=True, slots=True)
class Merchant:
    code: str
    provider: PaymentProvider
    site_codes: frozenset[str]
    web_app: WechatApp | None = None
    """A WeChat merchant's official account with its AppSecret, when one is configured:
    WeChat web authorization gets the payers' openids under its appid."""


@dataclass(frozen=True, slots=True)
class MerchantBook:
    """The sites' own merchants by code, and which site uses which."""

    merchants: Mapping[str, Merchant] = field(default_factory=dict)
    _by_site: Mapping[tuple[ProviderName, str], str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, merchants: Iterable[Merchant]) -> MerchantBook:
        by_code: dict[str, Merchant] = {}
        by_site: dict[tuple[ProviderName, str], str] = {}
        for merchant in merchants:
            if not CODE.match(merchant.code):
                raise MerchantBookError(f"merchant code {merchant.code!r} is not 1-32 of [a-z0-9-]")
            if merchant.code in by_code:
                raise MerchantBookError(f"merchant code {merchant.code!r} is used twice")
            by_code[merchant.code] = merchant
            for site in merchant.site_codes:
                key = (merchant.provider.name, site)
                if key in by_site:
                    raise MerchantBookError(
                        f"site {site} has two {merchant.provider.name.value} merchants:"
                        f" {by_site[key]} and {merchant.code}"
                    )
                by_site[key] = merchant.code
        return cls(by_code, by_site)

    def code_for_site(self, provider: ProviderName, site_code: str) -> str:
        """The site's own merchant of ``provider``, or ``DEFAULT``."""
        return self._by_site.get((provider, site_code), DEFAULT)

    def get(self, provider: ProviderName, code: str) -> PaymentProvider | None:
        merchant = self.merchants.get(code)
        if merchant is None or merchant.provider.name is not provider:
            return None
        return merchant.provider

    def codes(self, provider: ProviderName) -> list[str]:
        return sorted(c for c, m in self.merchants.items() if m.provider.name is provider)
