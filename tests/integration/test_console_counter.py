"""The counter page: find an account, take cash, land on its printable receipt; and the
demo's online top-up through the sandbox's pay page."""

from __future__ import annotations

from meterpay.auth.model import Role
from meterpay.control import service as control
from meterpay.kernel.money import Money
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from tests.integration.builders import ACTOR, a_home
from tests.integration.signed import browser


def test_a_cashier_finds_the_account_takes_cash_once_and_gets_the_receipt(rt: Runtime) -> None:
    home = a_home(rt)
    owner = sites.create_customer(
        rt, site_id=home.site.id, name="李<四>", phone="13900001111", actor=ACTOR
    )
    sites.update_account(rt, home.account.id, customer_id=owner.id, actor=ACTOR)
    with browser(rt, "cashier1", Role.CASHIER) as web:
        page = web.get("/console/counter", params={"q": "1111"})
        assert page.status_code == 200 and "收费台" in page.text
        assert "李&lt;四&gt;" in page.text and home.account.number in page.text
        form = {
            "account_id": str(home.account.id),
            "amount": "120.50",
            "method": "cash",
            "key": "form-1",
            "note": "",
            "csrf_token": web.csrf,  # type: ignore[attr-defined]
        }
        paid = web.post("/console/counter", data=form, follow_redirects=False)
        assert paid.status_code == 303 and paid.headers["location"].startswith("/console/receipts/")
        again = web.post("/console/counter", data=form, follow_redirects=False)  # double click
        assert again.headers["location"] == paid.headers["location"]
        receipt = web.get(paid.headers["location"])
        assert receipt.status_code == 200 and "壹佰贰拾元伍角" in receipt.text
        assert "cashier1" in receipt.text  # who took the money
        forged = web.post("/console/counter", data={**form, "csrf_token": "x", "key": "f-9"})
        assert forged.status_code == 403  # another site's page cannot use the cookie
        bad = web.post("/console/counter", data={**form, "key": "form-2", "amount": "abc"})
        assert bad.status_code == 422
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("120.50")
