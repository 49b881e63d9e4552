"""The merchants a process talks to, looked up by provider and merchant code: the
default merchant of each provider (``Runtime.payments``) and the sites' own
(``Runtime.merchants``)."""

from __future__ import annotations

from meterpay.kernel.errors import NotFound
from meterpay.payments.merchants import DEFAULT
from meterpay.payments.provider import PaymentProvider, ProviderName
from meterpay.runtime import Runtime

NOTIFY_PATH = "/api/v1/payments/notify"


def provider_of(rt: Runtime, name: ProviderName | str, merchant: str = DEFAULT) -> PaymentProvider:
    """The provider client of a merchant; ``NotFound`` when it is not configured here."""
    found: PaymentProvider | None = None
    if name in set(ProviderName):
        provider = ProviderName(name)
        found = rt.payments.get(provider) if not merchant else rt.merchants.get(provider, merchant)
    if found is None:
        whose = f" merchant {merchant}" if merchant else ""
        raise NotFound(
            f"payment provider {name}{whose} is not configured here",
            provider=str(name),
            merchant=merchant,
        )
    return found


def merchant_for_site(rt: Runtime, provider: ProviderName, site_code: str) -> str:
    """The merchant that takes the site's payments through ``provider``."""
    return rt.merchants.code_for_site(provider, site_code)


def takes_payments(rt: Runtime, provider: ProviderName, site_code: str) -> bool:
    """Whether a merchant of ``provider`` is configured here for the site's payments: its
    own, or else the default one."""
    code = merchant_for_site(rt, provider, site_code)
    if code == DEFAULT:
        return provider in rt.payments
    return rt.merchants.get(provider, code) is not None


def merchants_of(rt: Runtime) -> list[tuple[ProviderName, str]]:
    """Every merchant configured here: the defaults first, then the sites' own."""
    found = [(name, DEFAULT) for name in sorted(rt.payments)]
    for name in ProviderName:
        found.extend((name, code) for code in rt.merchants.codes(name))
    return found


def notify_url(rt: Runtime, provider: ProviderName, merchant: str = DEFAULT) -> str:
    """Where the merchant's notifications reach this deployment."""
    path = f"{NOTIFY_PATH}/{provider.value}" + (f"/{merchant}" if merchant else "")
    return rt.settings.public_url.rstrip("/") + path


def clearing_code(site_code: str, provider: ProviderName) -> str:
    """The site's clearing account for a provider: money the provider holds for us."""
    return f"clearing:{site_code}:{provider.value}"
