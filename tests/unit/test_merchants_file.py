"""The sites' own merchants read from ``MP_PAYMENT_MERCHANTS_FILE``: a good file gives
each site its merchant, anything wrong stops the start with a message that names the
problem and never a key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from meterpay.config import Settings
from meterpay.kernel.clock import FixedClock
from meterpay.payments.merchants import DEFAULT
from meterpay.payments.merchants_file import MerchantsFileError, load
from meterpay.payments.provider import ProviderName
from meterpay.payments.sandbox import SandboxKeys
from meterpay.payments.setup import PaymentSetupError, merchants_from
from tests.merchant_files import alipay_entry, wechat_entry, write

CLOCK = FixedClock(datetime(2026, 11, 1, tzinfo=UTC))
ALIPAY_APP, ALIPAY_PID = "2021000000000001", "2088000000000001"


@pytest.fixture(scope="module")
def keys() -> SandboxKeys:
    return SandboxKeys(mchid="1900000002", appid="wxgarden0000001")


def test_each_named_site_gets_its_merchant_and_every_other_site_the_default(
    tmp_path: Path, keys: SandboxKeys
) -> None:
    path = write(
        tmp_path,
        wechat_entry(tmp_path, "garden", ["GARDEN", "PARK"], keys),
        alipay_entry(tmp_path, "garden-ali", ["GARDEN"], ALIPAY_APP, ALIPAY_PID),
    )
    book = load(path, CLOCK)
    assert book.code_for_site(ProviderName.WECHAT, "GARDEN") == "garden"
    assert book.code_for_site(ProviderName.WECHAT, "PARK") == "garden"
    assert book.code_for_site(ProviderName.ALIPAY, "GARDEN") == "garden-ali"
    assert book.code_for_site(ProviderName.ALIPAY, "PARK") == DEFAULT
    assert book.code_for_site(ProviderName.WECHAT, "EAST") == DEFAULT
    wechat = book.get(ProviderName.WECHAT, "garden")
    assert wechat is not None and wechat.name is ProviderName.WECHAT
    assert book.get(ProviderName.ALIPAY, "garden") is None  # a code belongs to one provider
    assert book.codes(ProviderName.ALIPAY) == ["garden-ali"]


def test_no_file_configured_means_no_site_merchants() -> None:
    assert merchants_from(Settings(database_url="sqlite://"), CLOCK).merchants == {}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda t: t.replace('code = "garden"', 'code = "Garden!"'), "code"),
        (lambda t: t.replace('mchid = "1900000002"', 'mchid = "abc"'), "mchid"),
        (lambda t: t.replace('provider = "wechat"', 'provider = "unionpay"'), "provider"),
        (lambda t: t + 'colour = "blue"\n', "colour"),
        (lambda t: t.replace("sites = [", "sites = [] #"), "sites"),
        (lambda t: t.replace("[[merchants]]", "[[merchants]"), "not TOML"),
    ],
)
def test_a_malformed_file_stops_the_start_naming_the_problem(
    tmp_path: Path, keys: SandboxKeys, change: object, problem: str
) -> None:
    text = wechat_entry(tmp_path, "garden", ["GARDEN"], keys)
    path = write(tmp_path, change(text))  # type: ignore[operator]
    with pytest.raises(MerchantsFileError, match=problem):
        load(path, CLOCK)


def test_a_site_with_two_merchants_of_one_provider_is_refused(
    tmp_path: Path, keys: SandboxKeys
) -> None:
    other = SandboxKeys(mchid="1900000003", appid="wxpark000000001")
    path = write(
        tmp_path,
        wechat_entry(tmp_path, "garden", ["GARDEN"], keys),
        wechat_entry(tmp_path, "park", ["PARK", "GARDEN"], other),
    )
    with pytest.raises(MerchantsFileError, match="site GARDEN has two wechat merchants"):
        load(path, CLOCK)


def test_one_code_twice_is_refused(tmp_path: Path, keys: SandboxKeys) -> None:
    first = wechat_entry(tmp_path, "garden", ["GARDEN"], keys)
    path = write(tmp_path, first, first.replace('"GARDEN"', '"PARK"'))
    with pytest.raises(MerchantsFileError, match="used twice"):
        load(path, CLOCK)


def test_an_unreadable_key_file_is_named_and_its_content_never_shown(
    tmp_path: Path, keys: SandboxKeys
) -> None:
    path = write(tmp_path, wechat_entry(tmp_path, "garden", ["GARDEN"], keys))
    (tmp_path / "garden" / "apiv3_key").unlink()
    with pytest.raises(PaymentSetupError, match="apiv3_key_file") as raised:
        merchants_from(Settings(database_url="sqlite://", payment_merchants_file=path), CLOCK)
    assert keys.apiv3_key not in str(raised.value)
    (tmp_path / "garden" / "apiv3_key").write_text(keys.apiv3_key)
    for pem in (tmp_path / "garden" / "wechatpay").glob("*.pem"):
        pem.unlink()
    with pytest.raises(MerchantsFileError, match=r"no <id>\.pem file"):
        load(path, CLOCK)


def test_a_missing_file_stops_the_start(tmp_path: Path) -> None:
    settings = Settings(database_url="sqlite://", payment_merchants_file=tmp_path / "none.toml")
    with pytest.raises(PaymentSetupError, match=r"none\.toml cannot be read"):
        merchants_from(settings, CLOCK)
