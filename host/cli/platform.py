"""``t2t api``, ``t2t audit verify|export``, ``t2t db upgrade``, ``t2t users set-role``:
the host platform's commands (library code in ``host/services``)."""

from __future__ import annotations

import ipaddress
import json
import sys
from datetime import UTC, datetime

import click
from rich.console import Console

TIME_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f",
                "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z")
DB_HELP = "Database URL (default: $T2T_DATABASE_URL, else SQLite in var/t2t.db)."


def _engine(url: str | None):
    from tick2trade.host.services.db import default_url, make_engine, session_factory, upgrade

    engine = make_engine(url or default_url())
    upgrade(engine)
    return engine, session_factory(engine)


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
    """Check every record's hash and link; exit 1 and say where if anything was edited,
    deleted or reordered."""
    from tick2trade.host.services import audit as log

    engine, sessions = _engine(url)
    with sessions() as s:
        verdict = log.verify(s)
    engine.dispose()
    if as_json:
        click.echo(json.dumps({"ok": verdict.ok, "records": verdict.records,
                               "head_seq": verdict.head_seq, "head_hash": verdict.head_hash,
                               "problems": [{"seq": p.seq, "what": p.what}
                                            for p in verdict.problems]}))
    else:
        console = Console()
        if verdict.ok:
            console.print(f"[green]audit chain intact[/green]: {verdict.records:,} records, "
                          f"head seq {verdict.head_seq} hash {verdict.head_hash}",
                          highlight=False)
        else:
            console.print(f"[red]audit chain broken[/red] ({len(verdict.problems)} "
                          f"problem(s) in {verdict.records:,} records):", highlight=False)
            for p in verdict.problems:
                console.print(f"  {p}", highlight=False)
    sys.exit(0 if verdict.ok else 1)


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


@click.command()
@click.option("--db", "url", help=DB_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--smtp", default="localhost:25", show_default=True, metavar="HOST:PORT",
              help="SMTP server for e-mail notifications.")
@click.option("--mail-from", default="tick2trade@localhost", show_default=True)
@click.option("--webhook-allow", multiple=True, metavar="NETWORK",
              help="Let webhooks reach this non-public network (e.g. 10.1.2.0/24); "
                   "repeatable. By default they may only go to public addresses.")
def api(url: str | None, host: str, port: int, smtp: str, mail_from: str,
        webhook_allow: tuple[str, ...]) -> None:
    """Serve the HTTP/WebSocket API (OpenAPI at /docs). Orders go to the paper broker
    (fills against the market data store) until the engine is attached; no FPGA device
    is attached, so device endpoints answer 503."""
    import uvicorn

    from tick2trade.host.api import create_app
    from tick2trade.host.services.notify import SmtpConfig, WebhookPolicy
    from tick2trade.host.services.platform import Platform

    smtp_host, _, smtp_port = smtp.rpartition(":")
    if not smtp_host or not smtp_port.isdigit():
        raise click.BadParameter("expected HOST:PORT", param_hint="--smtp")
    for net in webhook_allow:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise click.BadParameter(f"{net!r} is not a network (e.g. 10.1.2.0/24)",
                                     param_hint="--webhook-allow") from None
    platform = Platform.open(url, smtp=SmtpConfig(smtp_host, int(smtp_port), mail_from),
                             webhooks=WebhookPolicy(allow=webhook_allow))
    platform.start_background()
    try:
        uvicorn.run(create_app(platform), host=host, port=port)
    finally:
        platform.close()

