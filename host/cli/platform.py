"""``t2t api``, ``t2t audit verify|export``, ``t2t db upgrade``, ``t2t users set-role``:
the host platform's commands (library code in ``host/services``)."""

from __future__ import annotations

import ipaddress
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

from tick2trade.host.cli.options import mail_and_webhooks

TIME_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f",
                "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z")
DB_HELP = ("Database URL (default: $T2T_DATABASE_URL, else SQLite in t2t.db of the state "
           "folder, $T2T_VAR_DIR or ~/.local/state/tick2trade).")
CONFIG_HELP = ("The configuration file whose [server] section names the database, Redis, "
               "the state folder and the JWT secret (default: $T2T_CONFIG; environment "
               "variables override it, options override both; docs/config.example.toml).")


def _engine(url: str | None):
    from tick2trade.host.services.db import make_engine, session_factory, upgrade
    from tick2trade.host.settings import SettingsError
    from tick2trade.host.settings import load as load_settings

    if url is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        _warn_stale(settings, Console(stderr=True))
        url = settings.database()
    engine = make_engine(url)
    upgrade(engine)
    return engine, session_factory(engine)


def _warn_stale(settings, console: Console) -> None:
    """Say so when ./var holds state of an earlier version, which used it by default."""
    stale = settings.stale_var()
    if stale is not None:
        console.print(f"[yellow]{stale} holds a database or JWT secret of an earlier "
                      f"version, which used ./var by default; the state folder is now "
                      f"{settings.var_dir} (pass --var {stale} or set T2T_VAR_DIR to keep "
                      f"using it)[/yellow]", highlight=False, soft_wrap=True)


def _when(ctx, param, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@click.group()
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command()
@click.option("--db", "url", help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify(url: str | None, as_json: bool) -> None:
    """Check every record's hash and link, and the orders, executions and positions
    against the chain; exit 1 and say where if anything was edited, deleted or
    reordered."""
    from tick2trade.host.services import audit as log

    from tick2trade.host.services import ledger

    engine, sessions = _engine(url)
    with sessions() as s:
        verdict = log.verify(s)
        rows = ledger.problems(s)
    engine.dispose()
    if as_json:
        click.echo(json.dumps({"ok": verdict.ok and not rows, "records": verdict.records,
                               "head_seq": verdict.head_seq, "head_hash": verdict.head_hash,
                               "problems": [{"seq": p.seq, "what": p.what}
                                            for p in verdict.problems],
                               "row_problems": [{"seq": p.seq, "what": p.what}
                                                for p in rows]}))
    else:
        console = Console()
        if rows:
            console.print(f"[red]orders, executions or positions differ from the audit "
                          f"chain[/red] ({len(rows)} problem(s)):", highlight=False)
            for p in rows:
                console.print(f"  {p}", highlight=False)
        else:
            console.print("[green]orders, executions and positions agree with the "
                          "chain[/green]", highlight=False)
        if verdict.ok:
            console.print(f"[green]audit chain intact[/green]: {verdict.records:,} records, "
                          f"head seq {verdict.head_seq} hash {verdict.head_hash}",
                          highlight=False)
        else:
            console.print(f"[red]audit chain broken[/red] ({len(verdict.problems)} "
                          f"problem(s) in {verdict.records:,} records):", highlight=False)
            for p in verdict.problems:
                console.print(f"  {p}", highlight=False)
    sys.exit(0 if verdict.ok and not rows else 1)


@audit.command()
@click.option("--db", "url", help=DB_HELP)
@click.option("--from", "start", type=click.DateTime(TIME_FORMATS), callback=_when,
              help="First instant included (UTC unless a zone is given).")
@click.option("--to", "end", type=click.DateTime(TIME_FORMATS), callback=_when,
              help="First instant excluded.")
@click.option("--out", type=click.File("w"), default="-", show_default=True,
              help="CSV file to write ('-' for stdout).")
def export(url: str | None, start: datetime | None, end: datetime | None, out) -> None:
    """Write the records from --from to --to as CSV (hashes included, so the range can be
    checked on its own)."""
    from tick2trade.host.services import audit as log

    engine, sessions = _engine(url)
    with sessions() as s:
        n = log.export_csv(s, out, start, end)
    engine.dispose()
    click.echo(f"{n} records", err=True)


@click.group()
def db() -> None:
    """The host platform's database."""


@db.command()
@click.option("--db", "url", help=DB_HELP)
def upgrade(url: str | None) -> None:
    """Create or migrate the schema to the newest revision."""
    engine, _ = _engine(url)
    engine.dispose()
    click.echo("schema at head")


@click.group()
def users() -> None:
    """User administration from the host (e.g. making the first admin)."""


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(["trader", "operator", "admin"]))
@click.option("--db", "url", help=DB_HELP)
def set_role(username: str, role: str, url: str | None) -> None:
    """Give USERNAME the ROLE (recorded in the audit trail as done by `cli`)."""
    from tick2trade.host.services.auth import Users

    engine, sessions = _engine(url)
    try:
        Users(sessions, secret="").set_role(username, role, actor="cli")
    except LookupError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"{username} is now {role}")


def _address(ctx, param, value: str | None):
    """HOST:PORT into (host, port); "local" and "off" pass through for --venue."""
    if value is None or value in ("local", "off"):
        return value
    host, sep, port = value.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
        if not sep or not 0 < int(port) < 65536:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HOST:PORT (an IPv4 address and a port "
                                 "1-65535, e.g. 127.0.0.1:15000)") from None
    return host, int(port)


def _default_line(line) -> str:
    return f"{line[0]}:{line[1]}"


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help=CONFIG_HELP)
@click.option("--db", "url", help=DB_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--venue", default="local", show_default=True, callback=_address,
              metavar="local|HOST:PORT|off",
              help="local: start the venue simulator on loopback and trade with it; "
                   "HOST:PORT: a running venue's OUCH/SoupBinTCP order entry (its feed "
                   "on --feed-a/--feed-b); off: no venue (no market data, paper orders).")
@click.option("--paper", is_flag=True,
              help="Orders to the paper broker (fills against the live market here; the "
                   "venue never sees them) instead of the venue.")
@click.option("--feed-a", default=None, callback=_address, metavar="HOST:PORT",
              help="With --venue HOST:PORT: feed line A (default NASDAQ's "
                   "233.54.12.111:26477, as `t2t venue` publishes).")
@click.option("--feed-b", default=None, callback=_address, metavar="HOST:PORT",
              help="... and line B (default 233.49.196.111:26477).")
@click.option("--retransmit", default="127.0.0.1:26478", show_default=True,
              callback=_address, metavar="HOST:PORT",
              help="With --venue HOST:PORT: the venue's MoldUDP64 retransmission server.")
@click.option("--venue-user", default="T2T", show_default=True,
              help="SoupBinTCP username (1-6 characters).")
@click.option("--venue-password", default="", help="SoupBinTCP password (0-10 characters).")
@click.option("--venue-rate", type=click.FloatRange(min=1), default=200.0, show_default=True,
              help="With --venue local: the simulator's actions per second.")
@click.option("--local-ports", default="15000:26477:26479:26478:15002", show_default=True,
              metavar="ORDERS:LINE_A:LINE_B:RETRANSMIT[:RFQ]",
              help="With --venue local: the loopback ports of its OUCH order entry (TCP), "
                   "feed lines A and B and retransmission server (UDP), and its RFQ port "
                   "(TCP; left out: a free one).")
@click.option("--var", "var_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="The state folder: the local venue's files, the order session's state, "
                   "the history, the SQLite database and the JWT secret by default "
                   "(default: server.var_dir, $T2T_VAR_DIR, else "
                   "~/.local/state/tick2trade).")
@click.option("--history", "history_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The market-data history file (DuckDB; default "
                                 "VAR/history.duckdb).")
@click.option("--no-history", is_flag=True, help="Keep no market-data history.")
@click.option("--history-raw-days", type=click.IntRange(1), default=7, show_default=True,
              help="Days of trade prints and 1 s bars kept; older prints become 1-minute "
                   "bars.")
@click.option("--history-retention-days", type=click.IntRange(1), default=365,
              show_default=True, help="Days of history kept at all.")
@click.option("--smtp", default="localhost:25", show_default=True, metavar="HOST:PORT",
              help="SMTP server for e-mail notifications.")
@click.option("--mail-from", default="tick2trade@localhost", show_default=True)
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Let pages from ORIGIN (e.g. https://desk.example.com) call the API; "
                   "repeatable. By default only the API's own pages (the client at /) may.")
@click.option("--webhook-allow", multiple=True, metavar="NETWORK",
              help="Let webhooks reach this non-public network (e.g. 10.1.2.0/24); "
                   "repeatable. By default they may only go to public addresses.")
@click.option("--trusted-proxy", multiple=True, metavar="ADDRESS|NETWORK",
              help="A reverse proxy whose X-Forwarded-For names the client (login "
                   "throttling and rate limits count that address); repeatable. By "
                   "default no peer is trusted and the peer's own address counts.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="json: every log record as one JSON object per line (ts, level, logger, "
                   "msg, request_id, extras) on stderr, from INFO up; text: uvicorn's "
                   "usual lines.")
@click.option("--bus", "bus_url", envvar="T2T_BUS_URL", metavar="nats://HOST:PORT",
              help="Publish orders, executions, book updates, prints and notifications "
                   "to this NATS JetStream server; notifications, history and the risk "
                   "monitor then run as `t2t worker notifier|history|risk`, not here "
                   "(no history file is opened). Default: $T2T_BUS_URL, else none.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Serve with this many processes on one port (SO_REUSEPORT), a dead one "
                   "restarted; needs PostgreSQL and Redis (the state they share) and "
                   "--venue off.")
@click.option("--reuse-port", is_flag=True, hidden=True,
              help="A worker of --workers: bind the port shared with the others.")
@click.option("--no-resume", is_flag=True, hidden=True,
              help="A worker of --workers restarted: leave the open orders alone.")
def api(config_path: Path | None, url: str | None, host: str, port: int, venue, paper: bool, feed_a, feed_b,
        retransmit, venue_user: str, venue_password: str, venue_rate: float,
        local_ports: str, var_dir: Path | None, history_path: Path | None, no_history: bool,
        history_raw_days: int, history_retention_days: int, smtp: str, mail_from: str,
        cors_origins: tuple[str, ...], webhook_allow: tuple[str, ...],
        trusted_proxy: tuple[str, ...], log_format: str, bus_url: str | None,
        workers: int, reuse_port: bool, no_resume: bool) -> None:
    """Serve the HTTP/WebSocket API (the web client at /, OpenAPI at /docs) with a live
    market: by default a venue simulator started here, its ITCH feed read into a
    full-depth book per symbol, and orders sent to it over OUCH. No FPGA device is
    attached, so device endpoints answer 503 (`t2t run --api` serves the API with the
    virtual FPGA in the path)."""
    from tick2trade.protocol.moldudp64 import DEFAULT_LINE_A, DEFAULT_LINE_B
    from tick2trade.host.api import create_app, serving
    from tick2trade.host.services.live import open_live
    from tick2trade.host.services.localvenue import VenuePorts, free_port
    from tick2trade.host.services.notify import SmtpConfig, WebhookPolicy
    from tick2trade.host.services.platform import Platform
    from tick2trade.host.services.shared import SharedUnavailable
    from tick2trade.host.settings import SettingsError
    from tick2trade.host.settings import load as load_settings

    try:
        settings = load_settings(config_path, database_url=url, var_dir=var_dir)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    var_dir = settings.var_dir
    smtp_host, smtp_port = mail_and_webhooks(smtp, webhook_allow)
    for net in trusted_proxy:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise click.BadParameter(f"{net!r} is not an address or network (e.g. "
                                     f"10.1.2.3 or 10.1.2.0/24)",
                                     param_hint="--trusted-proxy") from None
    if not (0 < len(venue_user) <= 6 and venue_user.isascii()) or \
            not (len(venue_password) <= 10 and venue_password.isascii()):
        raise click.BadParameter("a SoupBinTCP username is 1-6 ASCII characters, a "
                                 "password 0-10", param_hint="--venue-user/--venue-password")
    if (feed_a or feed_b) and not isinstance(venue, tuple):
        raise click.UsageError("--feed-a/--feed-b name a running venue's lines: they go "
                               "with --venue HOST:PORT")
    try:
        numbers = [int(x) for x in local_ports.split(":")]
        if len(numbers) == 4:
            numbers.append(free_port())
        if len(numbers) != 5 or not all(0 < x < 65536 for x in numbers):
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{local_ports!r} is not four or five ports 1-65535 "
                                 f"joined by ':'", param_hint="--local-ports") from None
    ports = VenuePorts(*(("127.0.0.1", x) for x in numbers))
    console = Console(stderr=True)
    if workers > 1:
        from tick2trade.host.api import workers as supervisor

        problems = supervisor.requirements(settings.postgres, bool(settings.redis_url),
                                           venue)
        if problems:
            raise click.UsageError("--workers needs " + "; and ".join(problems))
        # once, before the workers: they would race to migrate and to make a secret
        _engine(settings.database())[0].dispose()
        settings.secret()
        args = sys.argv[sys.argv.index("api") + 1:] if "api" in sys.argv else []
        sys.exit(supervisor.supervise(workers, args,
                                      say=lambda m: console.print(m, highlight=False)))
    _warn_stale(settings, console)
    if log_format == "json":
        import logging

        from rich.text import Text

        from tick2trade.host import logs

        # from the start, so that every line on stderr is JSON, this banner's included
        logs.use_json(filters=(serving.Redact(),))
        banner = logging.getLogger("tick2trade.cli.api")

        def say(text: str) -> None:
            banner.info(Text.from_markup(text).plain)
    else:
        def say(text: str) -> None:
            console.print(text, highlight=False, soft_wrap=True)
    try:
        live = open_live(var_dir, None if venue == "off" else venue, paper=paper,
                         line_a=feed_a or DEFAULT_LINE_A, line_b=feed_b or DEFAULT_LINE_B,
                         retransmit=retransmit, ports=ports, rate=venue_rate,
                         username=venue_user, password=venue_password)
    except (RuntimeError, OSError) as exc:
        raise click.ClickException(f"cannot start the market: {exc}") from None
    history = event_bus = None
    try:
        if bus_url:
            from tick2trade.host.services.bus import Bus

            try:
                event_bus = Bus(bus_url)
            except ConnectionError as exc:
                raise click.ClickException(f"{exc} (--bus / T2T_BUS_URL)") from None
            live.notes.append(f"event bus: {bus_url} (history, notifications and the risk "
                              f"monitor in `t2t worker`)")
        elif not no_history:
            from tick2trade.host.services.history import History, HistoryInUse

            if history_retention_days < history_raw_days:
                raise click.BadParameter("retention must be at least --history-raw-days",
                                         param_hint="--history-retention-days")
            path = history_path or var_dir / "history.duckdb"
            try:
                history = History(path, raw_days=history_raw_days,
                                  retention_days=history_retention_days)
            except HistoryInUse as exc:
                raise click.ClickException(f"{exc} (or --no-history)") from None
            live.notes.append(f"history: {path} (prints and 1 s bars for "
                              f"{history_raw_days} days, all for {history_retention_days})")
        platform = Platform.open(settings=settings,
                                 smtp=SmtpConfig(smtp_host, smtp_port, mail_from),
                                 webhooks=WebhookPolicy(allow=webhook_allow),
                                 market=live.market, broker=live.broker, live=live,
                                 history=history, bus=event_bus)
    except SharedUnavailable as exc:
        if history is not None:
            history.close()
        if event_bus is not None:
            event_bus.close()
        live.close()
        raise click.ClickException(f"{exc} (server.redis_url, $T2T_REDIS_URL)") from None
    except BaseException:
        if history is not None:
            history.close()
        if event_bus is not None:
            event_bus.close()
        live.close()
        raise
    say(f"t2t api: state in {var_dir} ({settings.origin['var_dir']})")
    say(f"  database {platform.engine.url.render_as_string(hide_password=True)}")
    if platform.shared is not None:
        say(f"  shared with the other processes over this database: Redis at "
            f"{settings.redis_url} (keys {platform.shared.prefix}:*)")
    say("  market data and orders from")
    for note in live.notes:
        say(f"    {note}")
    if live.broker is not None and not live.broker.wait_connected(10):
        say("[yellow]the venue's order entry did not answer yet; orders are refused until "
            "it does (retrying)[/yellow]")
    # a local venue or the paper broker starts empty: what was open before this start
    # goes to it again; a venue somebody else runs still has its orders
    resumed = {} if no_resume else platform.orders.resume(
        resubmit=venue == "local" or paper or venue == "off")
    if resumed:
        say("  orders open before this start: " + ", ".join(
            f"{n} {what.replace('_', ' ')}" for what, n in sorted(resumed.items())))
    platform.start_background()
    try:
        app = create_app(platform, cors_origins, trusted_proxies=trusted_proxy)
        if reuse_port:
            from tick2trade.host.api.workers import serve_shared

            serve_shared(app, host, port)
        else:
            serving.serve(app, host, port, log_format=log_format)
    finally:
        live.close()      # no more callbacks or prints, then the stores
        platform.close()
