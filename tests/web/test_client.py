"""End-to-end: the trader's screen and the operator's console in Chromium against a live
`t2t api` (fixtures in conftest.py), screenshots into build/screenshots/."""

import json
import re
from decimal import Decimal
from pathlib import Path

import httpx
from click.testing import CliRunner
from playwright.sync_api import expect

from tick2trade.cli import main

from tick2trade.testing.apiproc import start_api, stop_api
from tests.web.conftest import shot

PASSWORD = "correct horse battery"


def register(page, name: str) -> None:
    page.goto("/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=email]", f"{name}@example.com")
    page.click("button:text-is('Register')")
    expect(page.locator("#user")).to_contain_text(name)


def tokens(page) -> dict:
    return json.loads(page.evaluate("localStorage.getItem('t2t.session')"))


def working_row(page, order_id: str):
    return page.locator(".blotter tbody tr", has=page.locator(f"td:text-is('{order_id}')"))


def test_trader_ladder_order_blotter_fill_download_and_session(page, server):
    base, _ = server
    register(page, "webtrader")
    expect(page.locator("#stream-state")).to_have_text("live")
    # the ladder fills from the book stream: several live levels each side
    bids = page.locator(".ladder-table td.bid.level:not(:empty)")
    asks = page.locator(".ladder-table td.ask.level:not(:empty)")
    expect(bids.nth(2)).to_be_visible()
    expect(asks.nth(2)).to_be_visible()
    symbol = page.locator(".watch tr.selected").get_attribute("data-symbol")
    shot(page, "trader")

    # a limit from the ladder: its lowest price, some 80 ticks under the touch, so the
    # flow does not fill it while the test looks (a level with size was, at times)
    price = page.locator(".ladder-table tbody tr").last.get_attribute("data-price")
    page.click(f".ladder-table tr[data-price='{price}'] td.bid")
    form = page.locator(".order-form")
    expect(form.locator("input[name=price]")).to_have_value(price)
    expect(form.locator("select[name=side]")).to_have_value("buy")
    form.locator("input[name=qty]").fill("30")
    form.locator("button[type=submit]").click()
    row = page.locator(".blotter tbody tr").first
    expect(row).to_contain_text(price)
    order_id = row.locator("td").first.inner_text()
    expect(working_row(page, order_id)).to_contain_text(re.compile("accepted|pending"))
    # the working order shows on the ladder at its price
    expect(page.locator(f".ladder-table tr[data-price='{price}'] td.mine").first).to_have_text("30")
    shot(page, "trader-working-order")

    # modify from the blotter: mistakes are named before any request; a new price moves
    # the order on the ladder and a toast says what became of its queue priority
    page.click(f"button[aria-label='Modify order {order_id}']")
    edit = page.locator(f"form[aria-label='Modify order {order_id}']")
    expect(edit.locator("input[name=qty]")).to_have_value("30")
    expect(edit.locator("input[name=stop_price]")).to_have_count(0)     # a limit has none
    edit.locator("input[name=qty]").fill("0")
    edit.locator("button[type=submit]").click()
    expect(edit.locator(".error[data-for=qty]")).to_contain_text("whole number")
    edit.locator("input[name=qty]").fill("30")
    edit.locator("button[type=submit]").click()
    expect(edit.locator(".error[data-for=form]")).to_have_text("nothing to change")
    moved = page.locator(".ladder-table tbody tr").nth(-2).get_attribute("data-price")
    edit.locator("input[name=price]").fill(moved)
    shot(page, "trader-modify")
    edit.locator("button[type=submit]").click()
    expect(page.locator(".toast", has_text=f"order {order_id} modified")).to_contain_text(
        "back of the queue")                 # a new price at the venue: priority lost
    expect(edit).to_have_count(0)
    expect(working_row(page, order_id)).to_contain_text(moved)
    mine = ".ladder-table tr[data-price='{}'] td.mine"
    expect(page.locator(mine.format(moved)).first).to_have_text("30")
    expect(page.locator(mine.format(price)).first).to_have_text("")

    # the newer types show their own fields; a bracket goes in from the form, and a
    # modify the server refuses (its entry above its take profit) shows the server's reason
    form.locator("select[name=type]").select_option("trailing_stop")
    for name in ("trail_amount", "trail_bps"):
        expect(form.locator(f"input[name={name}]")).to_be_visible()
    expect(form.locator("select[name=trail_ref]")).to_be_visible()
    expect(form.locator("input[name=stop_price]")).to_have_count(0)
    form.locator("select[name=type]").select_option("iceberg")
    expect(form.locator("input[name=price]")).to_be_visible()
    expect(form.locator("input[name=display_qty]")).to_be_visible()
    form.locator("select[name=type]").select_option("limit")
    entry = Decimal(price)
    bracket = {"price": price, "take_profit": str(entry + Decimal("0.05")),
               "stop_loss": str((entry / 2).quantize(Decimal("0.0001")))}
    for name, value in bracket.items():
        form.locator(f"input[name={name}]").fill(value)
    form.locator("button[type=submit]").click()
    top = page.locator(".blotter tbody tr").first
    expect(top.locator("td").first).not_to_have_text(order_id)
    expect(top).to_contain_text(re.compile("accepted|pending"))
    bracket_id = top.locator("td").first.inner_text()
    for name in ("take_profit", "stop_loss"):
        form.locator(f"input[name={name}]").fill("")
    page.click(f"button[aria-label='Modify order {bracket_id}']")
    edit = page.locator(f"form[aria-label='Modify order {bracket_id}']")
    edit.locator("input[name=price]").fill(str(entry + Decimal("0.10")))
    edit.locator("button[type=submit]").click()
    expect(edit.locator(".error[data-for=form]")).to_contain_text("refused (422)")
    expect(edit.locator(".error[data-for=form]")).to_contain_text("take_profit")
    page.click(f"button[aria-label='Cancel order {bracket_id}']")
    expect(working_row(page, bracket_id)).to_have_count(0)

    # client-side checks name the field before any request
    form.locator("select[name=type]").select_option("limit")
    form.locator("input[name=price]").fill("1.23456")
    form.locator("button[type=submit]").click()
    expect(form.locator(".error[data-for=price]")).to_contain_text("4 places")

    # the keyboard: a price picked in the ladder with the arrows, b stages a buy there
    page.focus(".ladder-body")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("b")
    picked = page.locator(".ladder-table tr.sel").get_attribute("data-price")
    expect(form.locator("input[name=price]")).to_have_value(picked)
    expect(form.locator("input[name=qty]")).to_be_focused()
    expect(form.locator("input[name=qty]")).to_have_value("30")     # the b did not land there

    # cancel from the blotter: it moves to the done orders
    page.click(f"button[aria-label='Cancel order {order_id}']")
    page.click("button[role=tab]:has-text('Done')")
    expect(working_row(page, order_id)).to_contain_text("canceled")

    # a market order fills at the venue: the execution shows, the position too
    form.locator("select[name=type]").select_option("market")
    expect(form.locator("input[name=price]")).to_have_count(0)
    form.locator("input[name=qty]").fill("10")
    form.locator("button[type=submit]").click()
    page.click("button[role=tab]:has-text('Executions')")
    expect(page.locator(".blotter tbody tr").first).to_contain_text(symbol)
    page.click("button[role=tab]:has-text('Positions')")
    expect(page.locator(".blotter tbody tr").first).to_contain_text(symbol)
    expect(page.locator("#pnl")).to_contain_text("P&L")
    expect(page.locator(".notes-list li").first).to_be_visible()
    page.click(".ladder-head button:text-is('Centre')")
    shot(page, "trader-filled")

    # the transactions CSV through the browser
    with page.expect_download() as got:
        page.click(".blotter button:text-is('CSV')")
    csv = Path(got.value.path()).read_text().splitlines()
    assert csv[0].startswith("id,ts,order_id,symbol,side,qty,price")
    assert len(csv) >= 2 and f",{symbol},buy," in csv[1]
    assert Decimal(csv[1].split(",")[6]) > 0

    # a reload keeps the session; an access token the server refuses is refreshed
    page.reload()
    expect(page.locator("#user")).to_contain_text("webtrader")
    before = tokens(page)
    page.evaluate("""() => { const t = JSON.parse(localStorage.getItem('t2t.session'));
        t.access_token = 'expired'; localStorage.setItem('t2t.session', JSON.stringify(t)); }""")
    page.reload()
    expect(page.locator("#user")).to_contain_text("webtrader")
    expect(page.locator("#stream-state")).to_have_text("live")
    after = tokens(page)
    assert after["refresh_token"] != before["refresh_token"]

    # a trader sees no console, and the API refuses it when asked directly
    expect(page.locator("nav a:text-is('Operator')")).to_have_count(0)
    page.goto("/#/operator")
    expect(page.locator(".body")).to_contain_text("needs the operator or admin role")
    h = {"Authorization": f"Bearer {after['access_token']}"}
    assert httpx.get(f"{base}/operator/kill-switch", headers=h).status_code == 403

    page.click("text=Log out")
    expect(page.locator("form.login")).to_be_visible()
    assert page.evaluate("localStorage.getItem('t2t.session')") is None


def test_operator_trips_and_releases_the_kill_switch(page, server):
    base, db = server
    r = httpx.post(f"{base}/auth/register", json={"username": "webop", "password": PASSWORD,
                                                  "email": "webop@example.com"})
    assert r.status_code == 201, r.text
    done = CliRunner().invoke(main, ["users", "set-role", "webop", "operator", "--db", db])
    assert done.exit_code == 0, done.output
    page.goto("/")
    page.fill("input[name=username]", "webop")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.click("nav a:text-is('Operator')")
    expect(page.locator("section[aria-label='Market feed']")).to_contain_text("packets")
    expect(page.locator("section[aria-label='Streams']")).to_contain_text("connections")
    expect(page.locator("#kill-state")).to_contain_text("released")
    shot(page, "operator")

    page.click("text=Engage kill switch")
    page.fill(".confirm input[name=reason]", "browser test")
    page.click("text=Confirm: engage")
    expect(page.locator("#kill-state")).to_contain_text("ENGAGED")
    token = tokens(page)["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    placed = httpx.post(f"{base}/orders", headers=h, json={"symbol": "AAPL", "side": "buy",
                                                          "type": "limit", "price": "1.00",
                                                          "qty": 10})
    assert placed.status_code >= 400 or placed.json()["status"] == "rejected", placed.text
    shot(page, "operator-kill-engaged")
    page.click("text=Release kill switch")
    page.click("text=Confirm: release")
    expect(page.locator("#kill-state")).to_contain_text("released")
    assert httpx.get(f"{base}/operator/kill-switch", headers=h).json() == {"engaged": False}


def test_docs_page_loads_from_this_server_only(page, server):
    base, _ = server
    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url))
    page.goto("/docs")
    expect(page.locator(".swagger-ui .title").first).to_contain_text("tick2trade host API")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert seen and all(u.startswith(base) for u in seen), seen


def test_the_client_reconnects_after_the_server_restarts(browser, tmp_path):
    """The stream's state shows the drop, and once the server is back the session
    goes on (same database) and the ladder fills again from a new snapshot."""
    proc, base = start_api(tmp_path)
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base)
    try:
        page = ctx.new_page()
        register(page, "restarter")
        expect(page.locator("#stream-state")).to_have_text("live")
        expect(page.locator(".ladder-table td.bid.level:not(:empty)").first).to_be_visible()
        stop_api(proc)
        expect(page.locator("#stream-state")).not_to_have_text("live")
        shot(page, "trader-stream-down")
        proc, _ = start_api(tmp_path, port=int(base.rsplit(":", 1)[1]))
        expect(page.locator("#stream-state")).to_have_text("live")
        expect(page.locator(".ladder-table td.bid.level:not(:empty)").first).to_be_visible()
        expect(page.locator("#user")).to_contain_text("restarter")
    finally:
        ctx.close()
        stop_api(proc)
