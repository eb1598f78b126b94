"""The venue's configuration: defaults, and a TOML file checked key by key.

Design decisions
----------------
- Every setting has a default, so ``t2t venue`` runs with no file at all: the eight
  instruments of ``SYMBOLS`` (locates 1-8, so ``t2t replay --watch`` knows
  them), lines A and B on NASDAQ's groups (``protocol.moldudp64.DEFAULT_LINE_A/B``),
  order entry and retransmission on loopback.
- RFQ (``sim.venue.rfq``) is off unless ``[rfq] tcp`` names a port; its providers are
  ``[[rfq.provider]]`` tables (``DEFAULT_PROVIDERS`` without any), their quotes firm for
  ``quote_ttl_ms``.
- A file is read with the standard library's ``tomllib``; every key is checked for its
  type and range, and an unknown key is an error too (a misspelt key silently ignored is
  a setting silently not applied). Errors name the file, the key and what is accepted.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tick2trade.protocol import moldudp64
from tick2trade.protocol.moldudp64 import DEFAULT_LINE_A, DEFAULT_LINE_B

from tick2trade.sim.venue.engine import MAX_ITCH_PRICE, SMP_MODES, Instrument
from tick2trade.sim.venue.feed import DEFAULT_MAX_PAYLOAD, DEFAULT_SESSION
from tick2trade.sim.venue.rfq import DEFAULT_PROVIDERS, DEFAULT_TTL_MS, Provider

Address = tuple[str, int]

# Starting mids in 1/10000 for the default instruments.
DEFAULT_MIDS = {"AAPL": 1_900_000, "MSFT": 4_200_000, "BTC-USD": 600_000_000,
                "ETH-USD": 30_000_000, "NVDA": 1_200_000, "QQQ": 4_800_000,
                "SPY": 5_600_000, "TSLA": 2_500_000}

# The default instruments, listed at locates 1-8 in this order.
SYMBOLS = ("AAPL", "MSFT", "BTC-USD", "ETH-USD", "NVDA", "QQQ", "SPY", "TSLA")


def default_instruments() -> list[Instrument]:
    out = []
    for k, sym in enumerate(SYMBOLS):
        crypto = sym.endswith("-USD")
        out.append(Instrument(sym, k + 1, tick=100, lot=1, max_qty=1_000_000,
                              round_lot=10 if crypto else 100,
                              kind="crypto" if crypto else "equity"))
    return out


@dataclass
class VenueConfig:
    session: str = DEFAULT_SESSION
    smp: str | None = None
    instruments: list[Instrument] = field(default_factory=default_instruments)
    mids: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIDS))
    line_a: Address = DEFAULT_LINE_A
    line_b: Address = DEFAULT_LINE_B
    retransmit: Address = ("127.0.0.1", 26478)
    max_payload: int = DEFAULT_MAX_PAYLOAD
    feed_heartbeat: float = 1.0
    ttl: int = 1
    interface: str | None = None
    tcp: Address | None = ("127.0.0.1", 15000)
    udp: Address | None = ("127.0.0.1", 15001)
    users: dict[str, str] | None = None
    order_heartbeat: float = 1.0
    order_timeout: float = 15.0
    seed: int = 1
    rate: float = 1000.0
    participants: int = 8
    rfq_tcp: Address | None = None
    quote_ttl_ms: int = DEFAULT_TTL_MS
    providers: tuple[Provider, ...] = DEFAULT_PROVIDERS


class ConfigError(ValueError):
    """A configuration the venue cannot run with; the message says where and why."""


class _Reader:
    def __init__(self, source: str, table: dict, prefix: str):
        self.source, self.table, self.prefix = source, table, prefix
        self.used: set[str] = set()

    def fail(self, key: str, problem: str):
        raise ConfigError(f"{self.source}: {self.prefix}{key}: {problem}")

    def get(self, key: str, kind, default, check=None, accepted: str = ""):
        self.used.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            self.fail(key, f"{value!r} is not {accepted or kinds[0].__name__}")
        if check is not None and not check(value):
            self.fail(key, f"{value!r} is not {accepted}")
        return value

    def address(self, key: str, default, optional: bool = False):
        text = self.get(key, str, None, accepted="HOST:PORT")
        if text is None:
            return default
        if optional and text in ("", "off"):
            return None
        host, sep, port = text.rpartition(":")
        try:
            host = str(ipaddress.IPv4Address(host))
            port = int(port)
            if not sep or not 0 <= port < 65536:
                raise ValueError
        except ValueError:
            self.fail(key, f"{text!r} is not HOST:PORT (an IPv4 address and a port "
                           f"0-65535, e.g. \"127.0.0.1:15000\"" +
                      ("; \"off\" turns it off)" if optional else ")"))
        return host, port

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            self.fail(unknown[0], f"unknown key (known here: {', '.join(sorted(self.used))})")


def _positive(v) -> bool:
    return v > 0


def load_config(path: str | Path | None) -> VenueConfig:
    """The defaults, overridden by the TOML file at ``path`` (None: defaults only)."""
    cfg = VenueConfig()
    if path is None:
        return cfg
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None

    top = _Reader(source, data, "")
    sections = {}
    for name in ("venue", "feed", "order_entry", "flow", "rfq"):
        sections[name] = _Reader(source, top.get(name, dict, {}, accepted="a table"),
                                 f"{name}.")
    v = sections["venue"]
    cfg.session = v.get("session", str, cfg.session,
                        lambda s: 0 < len(s) <= moldudp64.SESSION_LEN and s.isascii(),
                        "1-10 ASCII characters")
    cfg.smp = v.get("self_match_prevention", str, None, lambda s: s in SMP_MODES[1:],
                    " or ".join(SMP_MODES[1:]))
    f = sections["feed"]
    cfg.line_a = f.address("line_a", cfg.line_a)
    cfg.line_b = f.address("line_b", cfg.line_b)
    cfg.retransmit = f.address("retransmit", cfg.retransmit)
    smallest = moldudp64.HEADER + 2 + 50
    cfg.max_payload = f.get("max_payload", int, cfg.max_payload,
                            lambda n: smallest <= n <= 65507,
                            f"an integer {smallest}-65507 (bytes of UDP payload)")
    cfg.feed_heartbeat = float(f.get("heartbeat", (int, float), cfg.feed_heartbeat,
                                     _positive, "a positive number of seconds"))
    cfg.ttl = f.get("ttl", int, cfg.ttl, lambda n: 0 <= n <= 255, "an integer 0-255")
    cfg.interface = f.get("interface", str, None, _is_ipv4, "an IPv4 address")
    o = sections["order_entry"]
    cfg.tcp = o.address("tcp", cfg.tcp, optional=True)
    cfg.udp = o.address("udp", cfg.udp, optional=True)
    cfg.order_heartbeat = float(o.get("heartbeat", (int, float), cfg.order_heartbeat,
                                      _positive, "a positive number of seconds"))
    cfg.order_timeout = float(o.get("timeout", (int, float), cfg.order_timeout,
                                    _positive, "a positive number of seconds"))
    users = o.get("users", dict, None, accepted="a table of username = \"password\"")
    if users is not None:
        for name, pw in users.items():
            if not (0 < len(name) <= 6 and name.isascii()):
                o.fail(f"users.{name}", "a SoupBinTCP username is 1-6 ASCII characters")
            if not (isinstance(pw, str) and len(pw) <= 10 and pw.isascii()):
                o.fail(f"users.{name}", "a password is a string of 0-10 ASCII characters")
        cfg.users = dict(users)
    fl = sections["flow"]
    cfg.seed = fl.get("seed", int, cfg.seed)
    cfg.rate = float(fl.get("rate", (int, float), cfg.rate, _positive,
                            "a positive number of actions per second"))
    cfg.participants = fl.get("participants", int, cfg.participants,
                              lambda n: 1 <= n <= 100, "an integer 1-100")
    _rfq(source, sections["rfq"], cfg)
    for r in sections.values():
        r.done()

    raw = top.get("instrument", list, None, accepted="an array of tables [[instrument]]")
    if raw is not None:
        if not raw:
            top.fail("instrument", "at least one [[instrument]] is needed")
        cfg.instruments, cfg.mids = [], {}
        for k, table in enumerate(raw):
            if not isinstance(table, dict):
                top.fail(f"instrument[{k}]", "must be a table")
            cfg.instruments.append(_instrument(_Reader(source, table, f"instrument[{k}]."),
                                               cfg.mids))
        _unique(top, cfg.instruments)
    top.done()
    return cfg


def _rfq(source: str, r: _Reader, cfg: VenueConfig) -> None:
    cfg.rfq_tcp = r.address("tcp", cfg.rfq_tcp, optional=True)
    cfg.quote_ttl_ms = r.get("quote_ttl_ms", int, cfg.quote_ttl_ms,
                             lambda n: 1 <= n <= 3_600_000,
                             "an integer 1-3600000 (milliseconds)")
    raw = r.get("provider", list, None, accepted="an array of tables [[rfq.provider]]")
    if raw is None:
        return
    if not raw:
        r.fail("provider", "at least one [[rfq.provider]] is needed (or leave it out "
                           "for the default providers)")
    providers = []
    for k, table in enumerate(raw):
        if not isinstance(table, dict):
            r.fail(f"provider[{k}]", "must be a table")
        p = _Reader(source, table, f"rfq.provider[{k}].")
        name = p.get("name", str, None, lambda s: 0 < len(s) <= 16 and s.isascii()
                     and s.isalnum(), "1-16 ASCII letters and digits")
        if name is None:
            p.fail("name", "missing (every provider needs one)")
        if name in (q.name for q in providers):
            p.fail("name", f"{name!r} is another provider's too")
        providers.append(Provider(
            name,
            spread_bps=float(p.get("spread_bps", (int, float), 10.0,
                                   lambda v: 0 <= v <= 10_000,
                                   "a number of basis points 0-10000")),
            max_qty=p.get("max_qty", int, 100_000, _positive, "a positive integer"),
            delay_ms=float(p.get("delay_ms", (int, float), 5.0,
                                 lambda v: 0 <= v <= 60_000,
                                 "a number of milliseconds 0-60000"))))
        p.done()
    cfg.providers = tuple(providers)


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _instrument(r: _Reader, mids: dict[str, int]) -> Instrument:
    symbol = r.get("symbol", str, None,
                   lambda s: 0 < len(s) <= 8 and s.isascii() and s.isprintable()
                   and " " not in s, "1-8 printable ASCII characters without spaces")
    if symbol is None:
        r.fail("symbol", "missing (every instrument needs one)")
    locate = r.get("locate", int, None, lambda n: 0 < n < 65536, "an integer 1-65535")
    if locate is None:
        r.fail("locate", "missing (the ITCH stock locate, 1-65535)")
    kind = r.get("kind", str, "equity", lambda s: s in ("equity", "crypto"),
                 "\"equity\" or \"crypto\"")
    tick = r.get("tick", int, 100, _positive, "a positive integer (1/10000)")
    lot = r.get("lot", int, 1, _positive, "a positive integer")
    inst = Instrument(
        symbol, locate, tick=tick, lot=lot,
        max_qty=r.get("max_qty", int, 1_000_000, lambda n: lot <= n < 2 ** 32,
                      f"an integer {lot} (the lot)-4294967295"),
        max_price=r.get("max_price", int, MAX_ITCH_PRICE,
                        lambda n: tick <= n <= MAX_ITCH_PRICE,
                        f"an integer {tick}-{MAX_ITCH_PRICE} (1/10000)"),
        round_lot=r.get("round_lot", int, 100 if kind == "equity" else 10, _positive,
                        "a positive integer"),
        kind=kind)
    mids[symbol] = r.get("mid", int, DEFAULT_MIDS.get(symbol, 1_000_000),
                         lambda n: tick <= n <= inst.max_price,
                         f"a price {tick}-{inst.max_price} (1/10000)")
    r.done()
    return inst


def _unique(r: _Reader, instruments: list[Instrument]) -> None:
    for attr in ("symbol", "locate"):
        seen: dict = {}
        for k, inst in enumerate(instruments):
            value = getattr(inst, attr)
            if value in seen:
                r.fail(f"instrument[{k}].{attr}", f"{value!r} is also instrument "
                                                 f"[{seen[value]}]'s")
            seen[value] = k
