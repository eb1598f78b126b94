"""The device configuration: one TOML file (read with the standard library's
``tomllib``), validated whole before anything is written, turned into register values
by name.

::

    [device]                 # how the host reaches the device; only `mac` is pushed
    mac = "02:00:00:00:00:02"
    ip = "10.0.0.2"
    port = 7000

    [feed]                   # MoldUDP64 lines, GROUP:PORT
    line_a = "233.54.12.111:26477"
    line_b = "233.49.196.111:26477"

    [symbols]
    watch = ["AAPL", "MSFT"] # symbol i of the gateware is watch[i]

    [events]                 # where the event channel sends gap reports, fills, ...
    enable = true
    mac = "02:00:00:00:00:10"
    ip = "10.0.0.1"
    port = 40002

    [venue]                  # order entry (the trade path)
    address = "10.0.0.50:4000"

    [risk]                   # pre-trade limits, integers
    max_order_qty = 1000

    [[trigger]]              # the strategy's trigger table
    symbol = "AAPL"
    kind = "cross"           # cross | improve | imbalance | stop
    side = "buy"             # buy | sell
    price = 1902500          # 1/10000 of the currency unit, as ITCH prices
    qty = 100

Design decisions
----------------
* Every problem is collected and reported at once, each with the key it is about
  (``feed.line_a``, ``trigger[2].side``) and what would be accepted; nothing is written
  unless the whole file is valid.
* ``device.ip``/``device.port`` are not pushed: they are the address the host talks to,
  and changing them over the control channel would cut the link mid-push.
* Sections for blocks the bitstream does not have (``venue`` → ``ouch_tx``, ``risk``,
  ``trigger`` → ``strategy``) are validated but cannot be pushed; ``registers`` returns
  them as missing and the CLI says so with its own exit code, never silently.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gateware.models.regmap import RegisterMap

SECTIONS = {
    "device": {"mac", "ip", "port"},
    "feed": {"line_a", "line_b"},
    "symbols": {"watch"},
    "events": {"enable", "mac", "ip", "port"},
    "venue": {"address"},
    "risk": {"max_order_qty", "max_notional", "max_open_orders", "max_position",
             "price_collar_bps", "order_rate_per_s"},
    "trigger": {"symbol", "kind", "side", "price", "qty"},
}
TRIGGER_KINDS = ("cross", "improve", "imbalance", "stop")
SIDES = ("buy", "sell")
# config section -> the gateware block its registers live in
BLOCK_OF = {"venue": "ouch_tx", "risk": "risk", "trigger": "strategy"}


class ConfigError(ValueError):
    """The file is not a valid configuration; ``problems`` lists every one."""

    def __init__(self, path: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n" +
                         "\n".join(f"  {p}" for p in problems))


@dataclass
class Config:
    device_mac: int | None = None
    device_ip: str | None = None
    device_port: int | None = None
    feeds: list[tuple[int, int, int]] = field(default_factory=list)  # (group, port, line)
    watch: list[str] = field(default_factory=list)
    events: dict | None = None  # enable, mac, ip, port
    venue: tuple[int, int] | None = None
    risk: dict[str, int] = field(default_factory=dict)
    triggers: list[dict] = field(default_factory=list)

    def registers(self, regmap: RegisterMap) -> tuple[dict[str, int], list[str]]:
        """(register values by name, config sections whose block is not in the map)."""
        values: dict[str, int] = {}
        missing = [s for s, present in (("venue", self.venue), ("risk", self.risk),
                                        ("trigger", self.triggers))
                   if present and not regmap.has_block(BLOCK_OF[s])]
        if self.device_mac is not None:
            values["ctl.mac"] = self.device_mac
        if self.feeds:
            n = 0
            while f"rx.feeds[{n}].enable" in regmap:
                n += 1
            for i in range(n):
                group, port, line = self.feeds[i] if i < len(self.feeds) else (0, 0, 0)
                values.update({f"rx.feeds[{i}].enable": int(i < len(self.feeds)),
                               f"rx.feeds[{i}].line": line, f"rx.feeds[{i}].group": group,
                               f"rx.feeds[{i}].port": port})
        i = 0
        while f"rx.watch[{i}].enable" in regmap:
            stock = self.watch[i] if i < len(self.watch) else ""
            values[f"rx.watch[{i}].enable"] = int(bool(stock))
            values[f"rx.watch[{i}].stock"] = int.from_bytes(stock.ljust(8).encode(), "big") \
                if stock else 0
            i += 1
        if self.events is not None:
            values.update({"ctl.event_enable": int(self.events["enable"]),
                           "ctl.event_mac": self.events["mac"],
                           "ctl.event_ip": self.events["ip"],
                           "ctl.event_port": self.events["port"]})
        if "venue" not in missing and self.venue:
            values.update({"ouch_tx.venue_ip": self.venue[0],
                           "ouch_tx.venue_port": self.venue[1]})
        if "risk" not in missing:
            values.update({f"risk.{k}": v for k, v in self.risk.items()})
        if "trigger" not in missing:
            for i, t in enumerate(self.triggers):
                values.update({f"strategy.trigger[{i}].{k}": v for k, v in t.items()})
        unknown = [n for n in values if n not in regmap]
        if unknown:
            raise ConfigError("register map", [f"{n}: no such register in this bitstream"
                                               for n in unknown])
        return values, missing


def _mac(value, key, problems) -> int | None:
    parts = str(value).split(":")
    try:
        if len(parts) != 6 or not all(len(p) == 2 for p in parts):
            raise ValueError
        return int("".join(parts), 16)
    except ValueError:
        problems.append(f"{key}: {value!r} is not a MAC address (six hex bytes, "
                        f"e.g. 02:00:00:00:00:10)")
        return None


def _ip(value, key, problems) -> int | None:
    try:
        return int(ipaddress.IPv4Address(str(value)))
    except ValueError:
        problems.append(f"{key}: {value!r} is not an IPv4 address")
        return None


def _port(value, key, problems) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        problems.append(f"{key}: {value!r} is not a UDP port (an integer 1-65535)")
        return None
    return value


def _address(value, key, problems, multicast: bool = False) -> tuple[int, int] | None:
    host, sep, port = str(value).rpartition(":")
    ip = None
    try:
        if not sep:
            raise ValueError
        addr = ipaddress.IPv4Address(host)
        if multicast and not addr.is_multicast:
            problems.append(f"{key}: {host} is not a multicast group (224.0.0.0/4)")
            return None
        ip, port = int(addr), int(port)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        problems.append(f"{key}: {value!r} is not {'GROUP' if multicast else 'IP'}:PORT "
                        f"(e.g. {'233.54.12.111:26477' if multicast else '10.0.0.50:4000'})")
        return None
    return ip, port


def _uint(value, key, problems, bits: int = 32) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        problems.append(f"{key}: {value!r} is not an integer 0..{(1 << bits) - 1}")
        return None
    return value


def parse(text: str, path: str = "<config>", symbols: int | None = None) -> Config:
    """Validate a configuration; ``symbols`` is the build's watch-list size when known."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not TOML: {exc}"]) from None
    problems: list[str] = []
    cfg = Config()
    for section in doc:
        if section not in SECTIONS:
            problems.append(f"{section}: unknown section; known: {', '.join(SECTIONS)}")
    tables = {}
    for section, known in SECTIONS.items():
        value = doc.get(section, [] if section == "trigger" else {})
        items = value if section == "trigger" else [value]
        if section == "trigger" and not isinstance(value, list) or \
                not all(isinstance(v, dict) for v in items):
            problems.append(f"{section}: must be a table" + ("s ([[trigger]])"
                                                              if section == "trigger" else ""))
            items = []
        for i, table in enumerate(items):
            where = f"{section}[{i}]" if section == "trigger" else section
            for key in table:
                if key not in known:
                    problems.append(f"{where}.{key}: unknown key; known: "
                                    f"{', '.join(sorted(known))}")
        tables[section] = items

    device = tables["device"][0] if tables["device"] else {}
    if "mac" in device:
        cfg.device_mac = _mac(device["mac"], "device.mac", problems)
    if "ip" in device and _ip(device["ip"], "device.ip", problems) is not None:
        cfg.device_ip = str(device["ip"])
    if "port" in device:
        cfg.device_port = _port(device["port"], "device.port", problems)

    feed = tables["feed"][0] if tables["feed"] else {}
    for line, key in enumerate(("line_a", "line_b")):
        if key in feed:
            got = _address(feed[key], f"feed.{key}", problems, multicast=True)
            if got:
                cfg.feeds.append((got[0], got[1], line))

    watch = (tables["symbols"][0] if tables["symbols"] else {}).get("watch", [])
    if not isinstance(watch, list):
        problems.append("symbols.watch: must be a list of stock names")
        watch = []
    for i, s in enumerate(watch):
        if not isinstance(s, str) or not 1 <= len(s) <= 8 or not s.isascii() or \
                not s.isprintable() or s != s.strip():
            problems.append(f"symbols.watch[{i}]: {s!r} is not an ITCH stock (1-8 "
                            f"printable ASCII characters, no padding)")
    dup = sorted({s for s in watch if watch.count(s) > 1})
    if dup:
        problems.append(f"symbols.watch: listed twice: {', '.join(map(str, dup))}")
    if symbols is not None and len(watch) > symbols:
        problems.append(f"symbols.watch: {len(watch)} stocks; this bitstream has "
                        f"{symbols} symbols")
    cfg.watch = [str(s) for s in watch]

    if tables["events"]:
        ev = tables["events"][0]
        if ev:
            enable = ev.get("enable", True)
            if not isinstance(enable, bool):
                problems.append(f"events.enable: {enable!r} is not true or false")
            cfg.events = {"enable": bool(enable),
                          "mac": _mac(ev.get("mac", "00:00:00:00:00:00"), "events.mac",
                                      problems),
                          "ip": _ip(ev.get("ip", "0.0.0.0"), "events.ip", problems),
                          "port": _port(ev.get("port", 0), "events.port", problems)
                          if enable or "port" in ev else 0}
            if enable and not {"mac", "ip", "port"} <= set(ev):
                problems.append("events: enable = true needs mac, ip and port")

    venue = tables["venue"][0] if tables["venue"] else {}
    if "address" in venue:
        cfg.venue = _address(venue["address"], "venue.address", problems)
    risk = tables["risk"][0] if tables["risk"] else {}
    cfg.risk = {k: _uint(v, f"risk.{k}", problems) for k, v in risk.items()
                if k in SECTIONS["risk"]}
    for i, t in enumerate(tables["trigger"]):
        where = f"trigger[{i}]"
        for key in ("symbol", "kind", "side", "price", "qty"):
            if key not in t:
                problems.append(f"{where}.{key}: missing")
        if "symbol" in t and t["symbol"] not in cfg.watch:
            problems.append(f"{where}.symbol: {t['symbol']!r} is not in symbols.watch")
        if "kind" in t and t["kind"] not in TRIGGER_KINDS:
            problems.append(f"{where}.kind: {t['kind']!r}; one of {', '.join(TRIGGER_KINDS)}")
        if "side" in t and t["side"] not in SIDES:
            problems.append(f"{where}.side: {t['side']!r}; one of {', '.join(SIDES)}")
        for key in ("price", "qty"):
            if key in t:
                _uint(t[key], f"{where}.{key}", problems, bits=32)
        if all(k in t for k in SECTIONS["trigger"]) and t.get("symbol") in cfg.watch:
            cfg.triggers.append({"symbol": cfg.watch.index(t["symbol"]),
                                 "kind": TRIGGER_KINDS.index(t["kind"])
                                 if t["kind"] in TRIGGER_KINDS else 0,
                                 "side": int(t["side"] == "sell"),
                                 "price": t["price"], "qty": t["qty"]})
    if problems:
        raise ConfigError(path, problems)
    return cfg


def load(path: Path, symbols: int | None = None) -> Config:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    return parse(text, str(path), symbols)


def watch_size(regmap: RegisterMap) -> int:
    n = 0
    while f"rx.watch[{n}].enable" in regmap:
        n += 1
    return n
