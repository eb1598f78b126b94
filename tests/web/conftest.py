"""The web client in Debian's Chromium, driven by Playwright, against a real `t2t api`
(its local venue included) on loopback.

Chromium is the system's (`apt-get install chromium`; `.ci/run` installs it), never a
browser Playwright downloads. Without it the browser tests skip and say why, except under
CI (``CI=true``), where that is a failure. Every request the pages make to another host
is refused and recorded, so the tests also show the client needs no internet.
"""

import os
import shutil
from pathlib import Path

import pytest

from tick2trade.testing.apiproc import start_api, stop_api

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return "Debian's chromium is not installed (apt-get install chromium)"
    if not (ROOT / "host" / "api" / "static" / "index.html").exists():
        return "the web client is not built (make setup)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make setup)"
    return None


@pytest.fixture(scope="session")
def browser():
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {why}")
        pytest.skip(why)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)     # a live market: levels and fills take a moment

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`t2t api` with its local venue; yields (base URL, database URL)."""
    tmp = tmp_path_factory.mktemp("web")
    proc, base = start_api(tmp, "--venue-rate", "400")
    try:
        yield base, f"sqlite:///{tmp / 'api.db'}"
    finally:
        stop_api(proc)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "call":
        item.failed_call = report.failed
    return report


@pytest.fixture
def page(browser, server, request):
    """A fresh browser context at 1280×800; ``page.external`` lists refused requests."""
    base, _ = server
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base,
                              accept_downloads=True)
    external: list[str] = []

    def gate(route):
        if route.request.url.startswith(base):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    ctx.route("**/*", gate)
    pg = ctx.new_page()
    pg.external = external
    pg.set_default_timeout(20_000)
    yield pg
    if getattr(request.node, "failed_call", False):
        shot(pg, f"failed-{request.node.name}")     # what the page showed when it failed
    ctx.close()
    assert not external, f"pages asked for other hosts: {external}"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
