"""Web client benchmark (``python -m tick2trade.bench.web``, part of ``make bench``):
figures measured in Debian's Chromium (headless, Playwright), never pass/fail.

Against a real ``t2t api`` with its local venue on loopback:

- first paint: ``first-contentful-paint`` of the login page, from the navigation start;
- time to a live ladder: a logged-in reload, from the navigation start to the first
  ladder cell that shows a size from the book stream (a MutationObserver in the page
  stamps it with ``performance.now()``), the median of ``--repeat`` reloads.

Then the ladder's update rate: the page's WebSocket is replaced, inside the page, by a
source that sends a 50-level snapshot and then book deltas (JSON text, one to three
levels near the touch each, as the stream sends them) at a set rate, in bursts every
5 ms. For each rate, 3 s of ``requestAnimationFrame`` timestamps give the frames per
second and the frames that came late (a gap over 1.5 frame periods): the highest rate
with none late is the figure.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from tick2trade.testing.apiproc import start_api

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
PASSWORD = "correct horse battery"

# stamps the first ladder cell with a size (runs before the page's own scripts)
STAMP = """
window.__ladderLive = null;
new MutationObserver((_, obs) => {
  const cell = document.querySelector('.ladder-table td.level');
  if (cell && [...document.querySelectorAll('.ladder-table td.level')].some(c => c.textContent)) {
    window.__ladderLive = performance.now(); obs.disconnect();
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""

# a WebSocket stand-in: a book snapshot on subscribe, then deltas at window.__rate a second
FAKE_STREAM = """
(() => {
  window.__rate = 0; window.__sent = 0;
  class FakeSocket {
    static OPEN = 1;
    constructor() {
      this.readyState = 0;
      setTimeout(() => { this.readyState = 1; this.onopen?.({}); }, 0);
    }
    send(text) {
      const m = JSON.parse(text);
      if (m.op !== 'subscribe' || !(m.channels || []).includes('book')) return;
      const sym = m.symbols[0], mid = 1000000;
      const lv = (i, side) => [((mid + (side === 'a' ? 1 + i : -i) * 100) / 10000).toFixed(4),
                               100 * (1 + i), 1];
      let seq = 1;
      const bids = [...Array(50).keys()].map(i => lv(i, 'b'));
      const asks = [...Array(50).keys()].map(i => lv(i, 'a'));
      const book = (kind, bids, asks) => JSON.stringify({type: 'book', kind, symbol: sym, seq,
        bids, asks, source: 'feed', depth: null, depth_tracked: null});
      this.onmessage?.({data: book('snapshot', bids, asks)});
      let owed = 0, last = performance.now(), n = 0;
      setInterval(() => {
        const now = performance.now();
        owed += window.__rate * (now - last) / 1000; last = now;
        for (; owed >= 1; owed--) {
          n++; seq++;
          const k = 1 + (n % 3), b = [], a = [];
          for (let j = 0; j < k; j++) {
            const i = (n * 7 + j * 13) % 10;
            const level = lv(i, j % 2 ? 'a' : 'b');
            level[1] = 100 * (1 + (n + j) % 50);
            (j % 2 ? a : b).push(level);
          }
          this.onmessage?.({data: book('delta', b, a)});
          window.__sent++;
        }
      }, 5);
    }
    close() { this.readyState = 3; }
  }
  window.WebSocket = FakeSocket;
})();
"""

FRAMES = """
(ms) => new Promise(done => {
  const t = []; const sent0 = window.__sent; const start = performance.now();
  const step = (now) => {
    t.push(now);
    if (now - start < ms) requestAnimationFrame(step);
    else done({times: t, sent: window.__sent - sent0, elapsed: now - start});
  };
  requestAnimationFrame(step);
})
"""


def login(page, name: str) -> None:
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#user")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rates", default="1000,5000,10000,20000,40000,80000")
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    console = Console()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        proc, base = start_api(Path(tmp), output=subprocess.DEVNULL)
        try:
            for name in ("bench", "bench2"):
                httpx.post(f"{base}/auth/register", json={
                    "username": name, "password": PASSWORD, "email": f"{name}@example.com"})
            browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
            ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, base_url=base)
            ctx.add_init_script(STAMP)
            page = ctx.new_page()
            paints, live = [], []
            page.goto("/")
            login(page, "bench")
            page.wait_for_function("window.__ladderLive !== null", timeout=30_000)
            for _ in range(args.repeat):
                page.reload()
                page.wait_for_function("window.__ladderLive !== null", timeout=30_000)
                live.append(page.evaluate("window.__ladderLive"))
                paints.append(page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime"))
            ctx.close()

            ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, base_url=base)
            ctx.add_init_script(FAKE_STREAM)
            page = ctx.new_page()
            page.goto("/")
            login(page, "bench2")
            page.wait_for_selector(".ladder-table td.level:not(:empty)")
            rows = []
            for rate in (int(r) for r in args.rates.split(",")):
                page.evaluate(f"window.__rate = {rate}")
                page.wait_for_timeout(500)
                got = page.evaluate(FRAMES, 3000)
                t = got["times"]
                gaps = [b - a for a, b in itertools.pairwise(t)]
                period = statistics.median(gaps)
                late = sum(g > 1.5 * period for g in gaps)
                rows.append((rate, got["sent"] / got["elapsed"] * 1000,
                             (len(t) - 1) / got["elapsed"] * 1000, late, max(gaps)))
            page.evaluate("window.__rate = 0")
            browser.close()
        finally:
            proc.terminate()
            proc.wait(20)

    table = Table(title="web client (Chromium headless, loopback)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("first contentful paint (login page, median)",
                  f"{statistics.median(paints):.0f} ms")
    table.add_row(f"navigation → live ladder, logged-in reload (median of {len(live)})",
                  f"{statistics.median(live):.0f} ms (min {min(live):.0f}, max {max(live):.0f})")
    console.print(table)
    rates = Table(title="ladder under book deltas (1920×1080)")
    for col in ("asked/s", "delivered/s", "frames/s", "late frames", "longest frame"):
        rates.add_column(col, justify="right")
    for rate, sent, fps, late, worst in rows:
        rates.add_row(f"{rate:,}", f"{sent:,.0f}", f"{fps:.1f}", str(late), f"{worst:.1f} ms")
    console.print(rates)


if __name__ == "__main__":
    main()
