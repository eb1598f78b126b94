"""Business rows anchored in the audit chain (issue 25, items 15 and 16): an edited,
added or deleted order or execution, or a position that is not the sum of its
executions, is found by ``t2t audit verify``."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, select, update

from tick2trade.cli import main
from tick2trade.host.api import create_app
from tick2trade.host.services import ledger
from tick2trade.host.services.db import Execution, Order, Position

from tests.host.conftest import SEED, register_login

T = 10_000


def _trade(platform, rng: random.Random) -> None:
    """A random paper session: resting and marketable orders, moving quotes, cancels."""
    with TestClient(create_app(platform)) as c:
        h = [register_login(c, f"trader{i}") for i in range(2)]
        mid = 100 * T
        for _ in range(60):
            mid += rng.randint(-3, 3) * 100
            platform.market.update("AAPL", bid=mid - 100, bid_size=rng.randint(1, 80),
                                   ask=mid + 100, ask_size=rng.randint(1, 80))
            side = rng.choice(("buy", "sell"))
            body = {"symbol": "AAPL", "side": side, "qty": rng.randint(1, 40),
                    "type": rng.choice(("market", "limit")), "tif": rng.choice(("day", "ioc"))}
            if body["type"] == "limit":
                body["price"] = f"{(mid + rng.randint(-500, 500)) / T:.4f}"
            who = rng.choice(h)
            r = c.post("/orders", headers=who, json=body)
            assert r.status_code == 201, r.text
            if r.json()["status"] == "accepted" and rng.random() < 0.3:
                assert c.delete(f"/orders/{r.json()['id']}", headers=who).status_code == 200


def _verify(db_url):
    r = CliRunner().invoke(main, ["audit", "verify", "--db", db_url, "--json"])
    return r.exit_code, json.loads(r.output)


def test_trading_verifies_and_positions_are_the_executions(platform, db_url):
    _trade(platform, random.Random(SEED))
    with platform.sessions() as s:
        assert s.scalar(select(Execution.id)) is not None
        assert ledger.problems(s) == []
        stored = {(p.user_id, p.symbol): p.qty for p in s.scalars(select(Position))}
        assert {k: v.qty for k, v in ledger.replay_positions(s).items()} == stored
    code, out = _verify(db_url)
    assert (code, out["ok"], out["row_problems"]) == (0, True, [])


EDITS = {
    "order qty": lambda s, o, x: s.execute(update(Order).where(Order.id == o)
                                           .values(qty=Order.qty + 100)),
    "order price": lambda s, o, x: s.execute(update(Order).where(Order.id == o)
                                             .values(price=123_4567)),
    "order owner": lambda s, o, x: s.execute(update(Order).where(Order.id == o)
                                             .values(user_id=1)),
    "order filled": lambda s, o, x: s.execute(update(Order).where(Order.id == o)
                                              .values(filled_qty=Order.filled_qty + 1)),
    "order deleted": lambda s, o, x: (s.execute(delete(Execution).where(
        Execution.order_id == o)), s.execute(delete(Order).where(Order.id == o))),
    "execution qty": lambda s, o, x: s.execute(update(Execution).where(Execution.id == x)
                                               .values(qty=Execution.qty + 1)),
    "execution added": lambda s, o, x: s.execute(insert(Execution).values(
        order_id=o, user_id=2, symbol="AAPL", side="buy", qty=1, price=T)),
    "position qty": lambda s, o, x: s.execute(update(Position).values(qty=Position.qty + 7)),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_business_row_is_found(platform, db_url, edit):
    _trade(platform, random.Random(SEED ^ 7))
    with platform.sessions.begin() as s:
        # an order of the second user (the first may be user 1 itself) that filled
        x, o = s.execute(select(Execution.id, Execution.order_id)
                         .where(Execution.user_id == 2).order_by(Execution.id)).first()
        EDITS[edit](s, o, x)
    code, out = _verify(db_url)
    assert code == 1 and out["ok"] is False and out["problems"] == []  # the chain is intact
    text = " ".join(p["what"] for p in out["row_problems"])
    assert (f"order {o}" in text) or ("position" in text), text
