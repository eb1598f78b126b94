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
    source_a = "10.1.0.5"    # optional: line A's datagrams only from this source
    seq_window = 1048576     # optional: a jump further ahead must be confirmed
    udp_verify = true        # optional: drop packets failing their UDP checksum (default)
    hold_packets = 4         # optional: late packets held before a gap is declared (0: off)
    hold_cycles = 65536      # optional: the longest a held run waits, in core cycles

    [symbols]
    watch = ["AAPL", "MSFT"] # symbol i of the gateware is watch[i]

    [events]                 # where the event channel sends gap reports, fills, ...
    enable = true
    mac = "02:00:00:00:00:10"
    ip = "10.0.0.1"
    port = 40002

    [venue]                  # where orders go (ouch_tx)
    ip = "10.0.0.2"
    port = 40000
    mac = "02:00:00:00:00:02"

    [[trigger]]              # the strategy's trigger table, one entry per symbol
    symbol = "AAPL"
    kind = "take"            # take | stop | improve
    side = "buy"             # buy | sell
    limit = "215.30"         # decimal price (stored in 1/10000); `stop` for a stop
    quantity = 100
    tif = "ioc"              # day | ioc | gtc | fok

    [risk]                   # pre-trade limits; 0 (or absent) switches a check off
    max_order_shares = 1000
    max_order_notional = "250000.00"
    position_limit = 5000    # per symbol, shares, counting open orders
    collar_bps = 500
    orders_per_second = 1000
    max_open_orders = 50
    kill = false

    [[fpga]]                 # optional, for several FPGAs (``t2t run --fpgas``): one
    name = "left"            # table a device, its symbols from symbols.watch
    symbols = ["AAPL"]
    [[fpga]]
    name = "right"
    symbols = ["MSFT"]
    [server]                 # the host platform (host/settings.py): not pushed
    database_url = "postgresql+psycopg://t2t@127.0.0.1/t2t"
    redis_url = "redis://127.0.0.1:6379/0"
    var_dir = "/var/lib/tick2trade"

Every trigger and risk key, with its meaning, is in ``docs/config.example.toml``. Times
and rates become cycles with ``device.clock_hz`` (default 156.25 MHz, the 64-bit 10GbE
clock).

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
* The trigger table is a memory behind a staging register: ``table_writes`` gives the
  writes in order, one entry for every symbol (those without a trigger are written
  disabled, so a push leaves no stale trigger armed).
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tick2trade.gateware.models.trade import strategy as trade

from tick2trade.gateware.models.trade.risk import Limits
from tick2trade.protocol.regmap import RegisterMap
from tick2trade.host import settings
from tick2trade.host.engine import CLIENT_TAGS, HOST_TAG

SECTIONS = {
    "device": {"mac", "ip", "port", "clock_hz"},
    "feed": {"line_a", "line_b", "source_a", "source_b", "seq_window", "udp_verify",
             "hold_packets", "hold_cycles"},
    "symbols": {"watch"},
    "events": {"enable", "mac", "ip", "port"},
    "venue": {"ip", "port", "mac", "src_port"},
    "risk": {"max_order_shares", "max_order_notional", "position_limit", "collar_bps",
             "collar", "gross_notional", "max_open_orders", "orders_per_second", "burst",
             "symbol_orders_per_second", "symbol_burst", "duplicate_window_us", "kill",
             "kill_after_rejects", "watchdog_ms", "watchdog_cancel_all", "restricted",
             "total_gross_notional"},
    "trigger": {"symbol", "kind", "side", "limit", "stop", "quantity", "tif", "one_shot",
                "ticks", "spread", "tick", "tag"},
    "fpga": {"name", "symbols", "src_port"},
    # the host platform's state and shared servers (host/settings.py); not pushed
    "server": set(settings.KEYS),
}
LISTS = ("trigger", "fpga")  # sections that are arrays of tables ([[trigger]])
TRIGGER_KINDS = trade.KINDS
SIDES = ("buy", "sell")
TIFS = {"day": "0", "ioc": "3", "gtc": "1", "fok": "4"}  # OUCH codes (models.ouch)
DEFAULT_CLOCK_HZ = 156_250_000
PRICE_SCALE = 10_000  # ITCH/OUCH prices: 4 implied decimals
# config section -> the gateware block its registers live in
BLOCK_OF = {"venue": "ouch_tx", "risk": "risk", "trigger": "strategy"}


class ConfigError(ValueError):
    """The file is not a valid configuration; ``problems`` lists every one."""

    def __init__(self, path: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n" +
                         "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class FpgaPart:
    """One ``[[fpga]]`` table: a device's name, its symbols, its order port (None: the
    run picks one)."""

    name: str
    symbols: tuple[str, ...]
    src_port: int | None = None


@dataclass
class Config:
    device_mac: int | None = None
    device_ip: str | None = None
    device_port: int | None = None
    feeds: list[tuple[int, int, int]] = field(default_factory=list)  # (group, port, line)
    feed_src: dict[int, int] = field(default_factory=dict)  # line -> source (0: any)
    seq_window: int | None = None
    udp_verify: bool | None = None
    hold_packets: int | None = None
    hold_cycles: int | None = None
    watch: list[str] = field(default_factory=list)
    events: dict | None = None  # enable, mac, ip, port
    clock_hz: int = DEFAULT_CLOCK_HZ
    venue: dict[str, int] = field(default_factory=dict)  # register -> value
    risk: dict[str, int] = field(default_factory=dict)  # risk register -> value
    triggers: dict[int, trade.Trigger] = field(default_factory=dict)  # symbol index ->
    fpgas: list[FpgaPart] = field(default_factory=list)  # [[fpga]]: several FPGAs
    total_gross: int = 0  # risk.total_gross_notional: the host's, across FPGAs (0: off)
    server: dict[str, str] = field(default_factory=dict)  # [server], as host/settings.py

    def limits(self) -> Limits:
        """The risk section as the model's limits (unset keys: check off)."""
        lim = Limits()
        for name, value in self.risk.items():
            if name.startswith("limits."):
                setattr(lim, name.removeprefix("limits."), value)
        restricted = self.risk.get("restricted", 0)
        lim.restricted = frozenset(i for i in range(restricted.bit_length())
                                   if restricted >> i & 1)
        return lim

    def table_writes(self, regmap: RegisterMap) -> list[tuple[str, int]]:
        """The trigger table's writes, in order: the staged entry, then the strobe that
        stores it at its symbol — for every symbol of the build."""
        if not regmap.has_block("strategy"):
            return []
        entry, strobe = regmap["strategy.entry"], regmap["strategy.entry_wr"]
        writes = []
        for sym in range(watch_size(regmap)):
            t = self.triggers.get(sym, trade.Trigger())
            fields = {k: int(v) for k, v in vars(t).items()}
            writes += [("strategy.entry", entry.compose(**fields)),
                       ("strategy.entry_wr", strobe.compose(stb=1, sym=sym))]
        return writes

    def push(self, dev) -> list[str]:
        """Write this configuration to a device as ``t2t config push`` does: the
        registers, then the trigger table's staged writes in order. Returns the config
        sections whose block the device's map lacks (nothing was written for them)."""
        values, missing = self.registers(dev.map)
        dev.write_many(values)
        for name, value in self.table_writes(dev.map):
            dev.write(name, value)
        return missing

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
        values.update({f"rx.feed_src[{line}]": src for line, src in self.feed_src.items()})
        if self.seq_window is not None:
            values["rx.seq_window"] = self.seq_window
        if self.udp_verify is not None:
            values["rx.udp_verify"] = int(self.udp_verify)
        if self.hold_packets is not None:
            values["rx.hold_packets"] = self.hold_packets
        if self.hold_cycles is not None:
            values["rx.hold_cycles"] = self.hold_cycles
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
        if "venue" not in missing:
            values.update({f"ouch_tx.{k}": v for k, v in self.venue.items()})
        if "risk" not in missing:
            values.update({f"risk.{k}": v for k, v in self.risk.items()})
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
        listed = section in LISTS
        value = doc.get(section, [] if listed else {})
        items = value if listed else [value]
        if listed and not isinstance(value, list) or \
                not all(isinstance(v, dict) for v in items):
            problems.append(f"{section}: must be a table" + (f"s ([[{section}]])"
                                                              if listed else ""))
            items = []
        for i, table in enumerate(items):
            where = f"{section}[{i}]" if listed else section
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
    for line, key in enumerate(("source_a", "source_b")):
        if key in feed and (src := _ip(feed[key], f"feed.{key}", problems)) is not None:
            cfg.feed_src[line] = src
    if "seq_window" in feed:
        w = feed["seq_window"]
        if not isinstance(w, int) or isinstance(w, bool) or not 0 <= w < 1 << 32:
            problems.append(f"feed.seq_window: {w!r} is not a message count (0 to 2**32 - 1)")
        else:
            cfg.seq_window = w
    if "udp_verify" in feed:
        if not isinstance(feed["udp_verify"], bool):
            problems.append(f"feed.udp_verify: {feed['udp_verify']!r} is not true or false")
        else:
            cfg.udp_verify = feed["udp_verify"]
    for key, top in (("hold_packets", 15), ("hold_cycles", (1 << 32) - 1)):
        if key in feed:
            v = feed[key]
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= top:
                problems.append(f"feed.{key}: {v!r} is not a count from 0 to {top}")
            else:
                setattr(cfg, key, v)

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
    if symbols is not None and len(watch) > symbols and not tables["fpga"]:
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

    if "clock_hz" in device:
        clock = _uint(device["clock_hz"], "device.clock_hz", problems)
        if clock:
            cfg.clock_hz = clock
        elif clock == 0:
            problems.append("device.clock_hz: must be above 0")
    server = tables["server"][0] if tables["server"] else {}
    cfg.server = {k: v for k in settings.KEYS if k in server and
                  (v := settings.check_value(k, server[k], f"server.{k}", problems))}
    _venue(tables["venue"][0] if tables["venue"] else {}, cfg, problems)
    _risk(tables["risk"][0] if tables["risk"] else {}, cfg, problems)
    for i, t in enumerate(tables["trigger"]):
        _trigger(t, f"trigger[{i}]", cfg, problems)
    _fpgas(tables["fpga"], cfg, problems, symbols)
    if problems:
        raise ConfigError(path, problems)
    return cfg


def price(value, key, problems, bits: int = 32) -> int | None:
    """A decimal price ("215.30", or a number) in 1/10000."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        problems.append(f"{key}: {value!r} is not a price (a decimal such as \"215.30\")")
        return None
    try:
        scaled = Decimal(str(value)) * PRICE_SCALE
    except InvalidOperation:
        problems.append(f"{key}: {value!r} is not a price (a decimal such as \"215.30\")")
        return None
    if scaled != scaled.to_integral_value() or not 0 <= scaled < 1 << bits:
        problems.append(f"{key}: {value!r} must be 0 or more with at most 4 decimals "
                        f"(below {((1 << bits) - 1) / PRICE_SCALE:.4f})")
        return None
    return int(scaled)


def _bool(value, key, problems) -> bool:
    if not isinstance(value, bool):
        problems.append(f"{key}: {value!r} is not true or false")
        return False
    return value


def _venue(venue: dict, cfg: Config, problems: list[str]) -> None:
    if "ip" in venue and (ip := _ip(venue["ip"], "venue.ip", problems)) is not None:
        cfg.venue["venue_ip"] = ip
    if "mac" in venue and (mac := _mac(venue["mac"], "venue.mac", problems)) is not None:
        cfg.venue["venue_mac"] = mac
    for key, reg in (("port", "venue_port"), ("src_port", "src_port")):
        if key in venue and (port := _port(venue[key], f"venue.{key}", problems)):
            cfg.venue[reg] = port


def _cycles(seconds: float, cfg: Config) -> int:
    return max(1, round(seconds * cfg.clock_hz))


def _risk(risk: dict, cfg: Config, problems: list[str]) -> None:
    out: dict[str, int] = {}

    def uint(key, bits=32):
        return _uint(risk[key], f"risk.{key}", problems, bits) if key in risk else None
    for key, reg, bits in (("max_order_shares", "max_shares", 32),
                           ("position_limit", "position_limit", 32),
                           ("collar_bps", "collar_bps", 16),
                           ("max_open_orders", "max_open_orders", 16),
                           ("kill_after_rejects", "kill_after", 16)):
        if (v := uint(key, bits)) is not None:
            out[reg] = v
    for key, reg, bits in (("max_order_notional", "max_notional", 64),
                           ("gross_notional", "max_gross", 64), ("collar", "collar_price", 32)):
        if key in risk and (v := price(risk[key], f"risk.{key}", problems, bits)) is not None:
            out[reg] = v
    for rate_key, burst_key, prefix in (("orders_per_second", "burst", "rate"),
                                        ("symbol_orders_per_second", "symbol_burst",
                                         "sym_rate")):
        rate, burst = uint(rate_key), uint(burst_key) if burst_key in risk else 1
        if rate:
            interval = max(1, cfg.clock_hz // rate)
            out[f"{prefix}_interval"] = interval
            out[f"{prefix}_tolerance"] = (max(1, burst or 1) - 1) * interval
    if (v := uint("duplicate_window_us")) is not None:
        out["dup_window"] = _cycles(v / 1e6, cfg) if v else 0
    if (v := uint("watchdog_ms")) is not None:
        out["watchdog"] = _cycles(v / 1e3, cfg) if v else 0
    for key, reg in (("kill", "kill"), ("watchdog_cancel_all", "watchdog_cancel")):
        if key in risk:
            out[reg] = int(_bool(risk[key], f"risk.{key}", problems))
    for reg in ("rate_interval", "sym_rate_interval", "dup_window", "watchdog"):
        if out.get(reg, 0) >= 1 << 32:
            problems.append(f"risk: {reg} is {out[reg]} cycles at {cfg.clock_hz} Hz, more "
                            f"than 32 bits hold")
    cfg.risk = {f"limits.{k}": v for k, v in out.items()}
    if "total_gross_notional" in risk:
        cfg.total_gross = price(risk["total_gross_notional"], "risk.total_gross_notional",
                                problems, 64) or 0
    if "restricted" in risk:
        names = risk["restricted"]
        if not isinstance(names, list):
            problems.append("risk.restricted: must be a list of symbols from symbols.watch")
            names = []
        mask = 0
        for name in names:
            if name not in cfg.watch:
                problems.append(f"risk.restricted: {name!r} is not in symbols.watch")
            else:
                mask |= 1 << cfg.watch.index(name)
        cfg.risk["restricted"] = mask


def _trigger(t: dict, where: str, cfg: Config, problems: list[str]) -> None:
    bad = len(problems)
    for key in ("symbol", "kind", "side", "quantity"):
        if key not in t:
            problems.append(f"{where}.{key}: missing")
    kind = t.get("kind")
    if kind is not None and kind not in TRIGGER_KINDS:
        problems.append(f"{where}.kind: {kind!r}; one of {', '.join(TRIGGER_KINDS)}")
    level = "stop" if kind == "stop" else "limit"
    if kind in TRIGGER_KINDS and level not in t:
        problems.append(f"{where}.{level}: missing (a {kind} trigger's price)")
    other = "limit" if level == "stop" else "stop"
    if other in t and kind in TRIGGER_KINDS:
        problems.append(f"{where}.{other}: not for a {kind} trigger (use {level})")
    sym = t.get("symbol")
    if sym is not None and sym not in cfg.watch:
        problems.append(f"{where}.symbol: {sym!r} is not in symbols.watch")
    elif sym is not None and cfg.watch.index(sym) in cfg.triggers:
        problems.append(f"{where}.symbol: {sym!r} has a trigger already (one per symbol)")
    if "side" in t and t["side"] not in SIDES:
        problems.append(f"{where}.side: {t['side']!r}; one of {', '.join(SIDES)}")
    tif = t.get("tif", "ioc")
    if tif not in TIFS:
        problems.append(f"{where}.tif: {tif!r}; one of {', '.join(TIFS)}")
    at = price(t[level], f"{where}.{level}", problems) if level in t else None
    quantity = _uint(t["quantity"], f"{where}.quantity", problems) if "quantity" in t else 0
    tick = price(t.get("tick", "0.01"), f"{where}.tick", problems)
    ticks = _uint(t.get("ticks", 0), f"{where}.ticks", problems, bits=16)
    spread = _uint(t.get("spread", 0), f"{where}.spread", problems, bits=16)
    tag = _uint(t.get("tag", 0), f"{where}.tag", problems, bits=16)
    if tag is not None and (tag == HOST_TAG or tag in CLIENT_TAGS):
        problems.append(f"{where}.tag: {tag:#06x} is the host's; a trigger's tag is "
                        f"below {CLIENT_TAGS.start:#06x} and not {HOST_TAG:#06x}")
    one_shot = _bool(t.get("one_shot", False), f"{where}.one_shot", problems)
    if len(problems) > bad:
        return
    cfg.triggers[cfg.watch.index(sym)] = trade.Trigger(
        enable=True, kind=TRIGGER_KINDS.index(kind), side=SIDES.index(t["side"]),
        one_shot=one_shot, price=at, quantity=quantity, tif=ord(TIFS[tif]),
        offset=ticks * tick, min_spread=spread * tick, tag=tag)


def _fpgas(tables: list[dict], cfg: Config, problems: list[str],
           symbols: int | None) -> None:
    """``[[fpga]]``: each device's symbols, from symbols.watch, none on two devices."""
    owner: dict[str, str] = {}
    names, ports = set(), set()
    for i, t in enumerate(tables):
        where = f"fpga[{i}]"
        name = t.get("name", f"fpga{i}")
        if not isinstance(name, str) or not name or not name.isprintable():
            problems.append(f"{where}.name: {name!r} is not a name (printable text)")
        elif name in names:
            problems.append(f"{where}.name: {name!r} names another [[fpga]] already")
        names.add(name)
        listed = t.get("symbols")
        if not isinstance(listed, list) or not listed:
            problems.append(f"{where}.symbols: missing or empty (a list of symbols from "
                            f"symbols.watch)")
            listed = []
        if symbols is not None and len(listed) > symbols:
            problems.append(f"{where}.symbols: {len(listed)} stocks; this bitstream has "
                            f"{symbols} symbols")
        for sym in listed:
            if sym not in cfg.watch:
                problems.append(f"{where}.symbols: {sym!r} is not in symbols.watch")
            elif sym in owner:
                problems.append(f"{where}.symbols: {sym!r} is traded by {owner[sym]} "
                                f"already (a symbol is on one FPGA)")
            else:
                owner[sym] = str(name)
        port = _port(t["src_port"], f"{where}.src_port", problems) if "src_port" in t \
            else None
        if port is not None and port in ports:
            problems.append(f"{where}.src_port: {port} is another FPGA's order port")
        ports.add(port)
        cfg.fpgas.append(FpgaPart(str(name), tuple(map(str, listed)), port))


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
