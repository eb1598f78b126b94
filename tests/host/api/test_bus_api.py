"""`t2t api --bus`: the API publishes and stores no notification itself; `t2t worker
notifier`, another process, stores it, and the API pushes it to the user's WebSocket."""

import json
import time

import httpx
from websockets.sync.client import connect

from tick2trade.host.api.ws import BEARER
from tick2trade.testing.apiproc import start_api, stop_api

from tests.host.conftest import wait_for
from tests.host.services.test_bus import start_worker, stop_worker

PW = "correct horse battery"


def test_an_order_placed_with_a_bus_is_notified_by_the_worker_process(bus_url, tmp_path):
    api, base = start_api(tmp_path, "--venue", "off", "--bus", bus_url)
    worker = None
    try:
        http = httpx.Client(base_url=base, timeout=10)
        assert http.post("/auth/register", json={"username": "nia", "password": PW,
                                                 "email": "nia@example.com"}).status_code == 201
        token = http.post("/auth/login", json={"username": "nia", "password": PW}
                          ).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}

        def notes():
            return http.get("/notifications", headers=h).json()["items"]

        with connect(base.replace("http", "ws") + "/ws",
                     subprotocols=[BEARER, token], open_timeout=10) as ws:
            r = http.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy",
                                                      "qty": 10, "type": "limit",
                                                      "price": "100.00"})
            assert r.status_code == 201, r.text
            order_id = r.json()["id"]
            # the order is accepted, and its notification waits on the bus
            time.sleep(1.0)
            assert notes() == []
            worker = start_worker("notifier", "--bus", bus_url,
                                  "--db", f"sqlite:///{tmp_path / 'api.db'}")
            got = wait_for(lambda: [n for n in notes()
                                    if n["payload"].get("order_id") == order_id], 30)
            assert got and got[0]["kind"] == "order_status"
            assert got[0]["payload"]["status"] == "accepted"
            deadline = time.monotonic() + 15
            pushed = None
            while pushed is None and time.monotonic() < deadline:
                msg = json.loads(ws.recv(timeout=deadline - time.monotonic()))
                if msg.get("type") == "notification":
                    pushed = msg
            assert pushed is not None and pushed["id"] == got[0]["id"]
            assert pushed["payload"]["order_id"] == order_id

            # /metrics: the notifier's lag, 0 once it caught up, growing while it is down
            def lag():
                for line in http.get("/metrics").text.splitlines():
                    if line.startswith('t2t_consumer_lag_messages{consumer="notifier"}'):
                        return float(line.split()[-1])
                return None
            assert wait_for(lambda: lag() == 0, 15)
            stop_worker(worker)
            worker = None
            r = http.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy",
                                                      "qty": 5, "type": "limit",
                                                      "price": "99.00"})
            assert r.status_code == 201, r.text
            assert wait_for(lambda: (lag() or 0) >= 1, 15)
            assert "t2t_bus_published_total" in http.get("/metrics").text
    finally:
        if worker is not None:
            stop_worker(worker)
        print(stop_api(api)[-3000:])
