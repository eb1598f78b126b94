"""Crash campaign (``python -m tick2trade.bench.crash [--kills N] [--target api|run|both]``):
``kill -9`` of ``t2t api`` (paper broker, the local venue's feed) and of ``t2t run --api``
during an order storm, ``N`` times each on one database per target, and after each kill:

- every order the API acknowledged (201) is in the database, with at least the fills
  the acknowledgement showed, and every order it showed terminal is still so;
- positions are the sum of the executions (``ledger.position_problems``);
- the audit chain verifies and the orders and executions agree with it
  (``audit.verify`` + ``ledger.order_problems``, what ``t2t audit verify`` runs);
- after the restart no order from before the kill is left open without a reason: with
  the paper broker the open ones are exactly those it put back to work (its start says how
  many), under ``t2t run`` none stays open (each is canceled, the reason on it).

Prints one line per kill and the totals. Figures, never pass/fail; see bench/README.md
("Reliability").
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from tick2trade.host.services import audit, db, ledger
from tick2trade.host.services.status import OPEN, TERMINAL

PASSWORD = "correct horse battery"
SYMBOL = {"api": "AAPL", "run": "BTC-USD"}


def _port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(target: str, work: Path, url: str) -> tuple[subprocess.Popen, int, list[str]]:
    """The target in its own process group (the local venue is its child); returns once
    the API answers, with the lines it printed so far (a thread keeps reading)."""
    port = _port()
    if target == "api":
        local = ":".join(str(_port(k)) for k in (socket.SOCK_STREAM, socket.SOCK_DGRAM,
                                                  socket.SOCK_DGRAM, socket.SOCK_DGRAM))
        cmd = ["api", "--paper", "--no-history", "--port", str(port), "--local-ports", local]
    else:
        cmd = ["run", "--duration", "3600", "--pace", "realtime", "--api", "--api-port",
               str(port), "--db", url]
    proc = subprocess.Popen([sys.executable, "-m", "tick2trade.cli", *cmd], cwd=work,
                            env={**os.environ, "T2T_DATABASE_URL": url,
                                 "T2T_VAR_DIR": os.path.join(work, "var")},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(x) for x in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json").status_code == 200:
                return proc, port, lines
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(f"{target} did not start:\n{''.join(lines)[-3000:]}")


def _login(api: httpx.Client, name: str) -> dict:
    creds = {"username": name, "password": PASSWORD}
    api.post("/auth/register", json={**creds, "email": f"{name}@example.com"})  # 409 later
    return {"Authorization": f"Bearer {api.post('/auth/login', json=creds).json()['access_token']}"}


def _storm(port: int, target: str, rng: random.Random, stop: threading.Event,
           acked: dict, ready: list, clients: int = 4) -> None:
    """``clients`` threads placing (and sometimes canceling) orders until ``stop``;
    ``acked``: order id → the last answer the API gave for it; each thread appends to
    ``ready`` once logged in and placing (the kill is timed from there)."""
    symbol = SYMBOL[target]

    def one(k: int) -> None:
        r = random.Random(rng.random())
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            try:
                h = _login(api, f"storm{k}")
            except (httpx.HTTPError, KeyError) as exc:
                print(f"storm{k} could not log in: {exc!r}", file=sys.stderr)
                return
            ready.append(k)
            while not stop.is_set():
                try:
                    q = api.get(f"/market/{symbol}/quote", headers=h).json()
                    if not (q.get("bid") and q.get("ask")):
                        time.sleep(0.05)
                        continue
                    bid, ask = float(q["bid"]), float(q["ask"])
                    side = r.choice(("buy", "sell"))
                    far = r.random() < 0.5  # resting, else through the touch
                    step = (ask - bid) or 0.01
                    price = (bid - step * r.randint(1, 20) if side == "buy" else
                             ask + step * r.randint(1, 20)) if far else \
                        (ask + step if side == "buy" else bid - step)
                    body = {"symbol": symbol, "side": side, "type": "limit",
                            "qty": r.randint(1, 5), "price": f"{max(price, 0.01):.2f}",
                            "tif": "gtc" if far else "ioc"}
                    got = api.post("/orders", headers=h, json=body)
                    if got.status_code != 201:
                        print(f"storm{k}: {got.status_code} {got.text[:200]}",
                              file=sys.stderr)
                    if got.status_code == 201:
                        o = got.json()
                        acked[o["id"]] = o
                        if o["status"] in OPEN and r.random() < 0.2:
                            c = api.delete(f"/orders/{o['id']}", headers=h)
                            if c.status_code in (200, 202):
                                acked[o["id"]] = c.json()
                except (httpx.HTTPError, ValueError):
                    if stop.is_set():
                        return
                    time.sleep(0.05)

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(timeout=10)


def _check(url: str, acked: dict) -> dict:
    """The database after a kill, with no process on it."""
    engine = db.make_engine(url)
    sessions = db.session_factory(engine)
    out = {"acked": len(acked), "missing": 0, "lost_fills": 0, "reopened": 0}
    with sessions() as s:
        rows = {o.id: o for o in s.scalars(select(db.Order).where(
            db.Order.id.in_(list(acked)))).all()} if acked else {}
        for order_id, seen in acked.items():
            row = rows.get(order_id)
            if row is None:
                out["missing"] += 1
                continue
            if row.filled_qty < seen["filled_qty"]:
                out["lost_fills"] += 1
            if seen["status"] in TERMINAL and row.status != seen["status"]:
                out["reopened"] += 1
        out["position_problems"] = len(ledger.position_problems(s))
        verdict = audit.verify(s)
        out["audit_ok"] = verdict.ok and not ledger.order_problems(s)
        out["open"] = len(s.scalars(select(db.Order.id).where(
            db.Order.status.in_(OPEN))).all())
        out["max_id"] = s.scalar(select(db.Order.id).order_by(db.Order.id.desc()).limit(1)) or 0
    engine.dispose()
    return out


def _after_restart(target: str, url: str, lines: list[str], before: dict) -> int:
    """Orders from before the kill left open with nothing working them."""
    text = "".join(lines)
    if target == "api":
        # the start's "orders open before this start: 2 armed, 1 expired, 30 resubmitted"
        # (Orders.resume): working again, or closed with a reason
        m = re.search(r"orders open before this start: ([^\n]*)", text)
        settled = sum(int(n) for n, _what in re.findall(r"(\d+) ([a-z ]+)", m.group(1))
                      ) if m else 0
        return before["open"] - settled
    engine = db.make_engine(url)
    with db.session_factory(engine)() as s:
        left = len(s.scalars(select(db.Order.id).where(
            db.Order.status.in_(OPEN), db.Order.id <= before["max_id"])).all())
    engine.dispose()
    return left


def campaign(target: str, kills: int, seed: int, storm: tuple[float, float]) -> list[dict]:
    rng = random.Random(seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 't2t.db'}"
        before = None
        for k in range(kills + 1):
            proc, port, lines = _start(target, work, url)
            if before is not None:
                before["open_without_reason"] = _after_restart(target, url, lines, before)
                results.append(before)
                print(f"{target} kill {k:2}: " + ", ".join(f"{a} {b}" for a, b in before.items()
                                                          if a != "max_id"), flush=True)
            if k == kills:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
                break
            acked: dict = {}
            ready: list = []
            stop = threading.Event()
            t = threading.Thread(target=_storm, args=(port, target, rng, stop, acked, ready))
            t.start()
            deadline = time.monotonic() + 120
            while (len(ready) < 4 or not acked) and time.monotonic() < deadline:
                time.sleep(0.05)  # logged in (slow: password hashing) and placing
            time.sleep(rng.uniform(*storm))
            os.kill(proc.pid, signal.SIGKILL)  # the target itself, mid-storm
            proc.wait()
            stop.set()
            t.join()
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its local venue, orphaned
            except ProcessLookupError:
                pass
            before = _check(url, dict(acked))
    return results


def totals(results: list[dict]) -> dict:
    return {"kills": len(results), "acked": sum(r["acked"] for r in results),
            "missing": sum(r["missing"] for r in results),
            "lost_fills": sum(r["lost_fills"] for r in results),
            "reopened": sum(r["reopened"] for r in results),
            "position_problems": sum(r["position_problems"] for r in results),
            "audit_failures": sum(not r["audit_ok"] for r in results),
            "open_without_reason": sum(r["open_without_reason"] for r in results)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--target", choices=("api", "run", "both"), default="both")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--storm", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX"),
                    help="seconds of storm before the kill (uniform)")
    args = ap.parse_args()
    for target in (("api", "run") if args.target == "both" else (args.target,)):
        got = totals(campaign(target, args.kills, args.seed, tuple(args.storm)))
        print(f"{target}: " + ", ".join(f"{k} {v}" for k, v in got.items()), flush=True)


if __name__ == "__main__":
    main()
