"""docs/prometheus: the scrape configuration and the alert rules are valid to
Prometheus' own checker (promtool, from Debian's ``prometheus`` package, which
``.ci/prometheus.sh`` installs), the alerts fire on the series they are meant for
(``alerts_test.yml``), and every metric they name is one the API exposes."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from tick2trade.host.services.feed import FeedHandler
from tick2trade.host.services.live import Live
from tick2trade.host.services.localvenue import free_port

from tests.host.api.test_observability import scrape
from tests.host.conftest import FakeDevice

DOCS = Path(__file__).resolve().parents[2] / "docs" / "prometheus"
# made elsewhere: Prometheus' own, the event bus's consumers, and the order session's
# (it needs a venue: tests/host/api/test_observability.py reads it from a real one)
NOT_FROM_THIS_APP = {"up", "t2t_consumer_lag_messages", "t2t_order_session_up"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: CI must check docs/prometheus "
                        "(.ci/prometheus.sh installs Debian's prometheus package)")
        pytest.skip("promtool is not installed (bash .ci/prometheus.sh)")
    return path


@pytest.mark.parametrize("args", [("check", "config", "prometheus.yml"),
                                  ("check", "rules", "alerts.yml"),
                                  ("test", "rules", "alerts_test.yml")])
def test_promtool_accepts(args):
    r = subprocess.run([promtool(), *args], cwd=DOCS, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


class KilledDevice(FakeDevice):
    def status(self):
        return {"kind": "fake", "link": "up", "killed": False, "open_orders": 0}


def test_every_metric_the_alerts_name_is_exposed(client, platform):
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())
    named = {name for group in rules["groups"] for rule in group["rules"]
             for name in re.findall(r"\b(t2t_[a-z_]+|up)\b", rule["expr"])}
    assert "t2t_consumer_lag_messages" in named
    udp = socket.SOCK_DGRAM
    feed = FeedHandler(platform.market, lines=[("127.0.0.1", free_port(udp)),
                                              ("127.0.0.1", free_port(udp))])
    platform.live, platform.device = Live(platform.market, feed=feed), KilledDevice()
    try:
        exposed = {name for name, _labels in scrape(client)}
    finally:
        feed.close()
        platform.live = platform.device = None
    assert named - NOT_FROM_THIS_APP <= exposed, named - NOT_FROM_THIS_APP - exposed
