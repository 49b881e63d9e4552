"""The providers a process talks to (``Runtime.payments``), looked up by name."""

from __future__ import annotations

from meterpay.kernel.errors import NotFound
from meterpay.payments.provider import PaymentProvider, ProviderName
from meterpay.runtime import Runtime


def provider_of(rt: Runtime, name: ProviderName | str) -> PaymentProvider:
    try:
        return rt.payments[ProviderName(name)]
    except (KeyError, ValueError):
        raise NotFound(
            f"payment provider {name} is not configured here", provider=str(name)
        ) from None


def clearing_code(site_code: str, provider: ProviderName) -> str:
    """The site's clearing account for a provider: money the provider holds for us."""
    return f"clearing:{site_code}:{provider.value}"
