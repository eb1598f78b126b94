"""``t2t worker notifier|history|risk``: the event bus's consumers, one process each
(library code in ``host/services/workers.py``)."""

from __future__ import annotations

from pathlib import Path

import click

from tick2trade.host.cli.options import mail_and_webhooks

BUS_HELP = "The event bus (NATS JetStream), e.g. nats://127.0.0.1:4222."
DB_HELP = "Database URL (default: $T2T_DATABASE_URL, else SQLite in var/t2t.db)."


def bus_options(f):
    f = click.option("--ack-wait", type=click.FloatRange(0.1), default=30.0,
                     show_default=True,
                     help="Seconds before a message fetched and not acknowledged (the "
                          "worker died) is delivered again.")(f)
    f = click.option("--batch", type=click.IntRange(1, 10_000), default=100,
                     show_default=True, help="Messages fetched and committed together.")(f)
    f = click.option("--bus", "bus_url", required=True, envvar="T2T_BUS_URL",
                     help=BUS_HELP + " Default: $T2T_BUS_URL.")(f)
    return f


def _ready(name: str, url: str):
    def say() -> None:
        click.echo(f"t2t worker {name}: consuming from {url}")
    return say


@click.group()
def worker() -> None:
    """Consumers of the event bus (`t2t api --bus`): each its own process, resuming
    from its durable position after a restart."""


@worker.command()
@bus_options
@click.option("--db", "url", help=DB_HELP)
@click.option("--smtp", default="localhost:25", show_default=True, metavar="HOST:PORT",
              help="SMTP server for e-mail notifications.")
@click.option("--mail-from", default="tick2trade@localhost", show_default=True)
@click.option("--webhook-allow", multiple=True, metavar="NETWORK",
              help="Let webhooks reach this non-public network (e.g. 10.1.2.0/24); "
                   "repeatable.")
def notifier(bus_url: str, batch: int, ack_wait: float, url: str | None, smtp: str,
             mail_from: str, webhook_allow: tuple[str, ...]) -> None:
    """Store notification events (once each) and deliver them: in-app, webhooks,
    e-mail."""
    from tick2trade.host.services import workers
    from tick2trade.host.services.db import default_url
    from tick2trade.host.services.notify import SmtpConfig, WebhookPolicy

    host, port = mail_and_webhooks(smtp, webhook_allow)
    workers.run("notifier", bus_url, db_url=url or default_url(),
                smtp=SmtpConfig(host, port, mail_from),
                webhooks=WebhookPolicy(allow=webhook_allow), batch=batch,
                ack_wait=ack_wait, ready=_ready("notifier", bus_url))


@worker.command()
@bus_options
@click.option("--history", "history_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("var/history.duckdb"), show_default=True,
              help="The market-data history file (DuckDB), owned by this worker.")
@click.option("--history-raw-days", type=click.IntRange(1), default=7, show_default=True)
@click.option("--history-retention-days", type=click.IntRange(1), default=365,
              show_default=True)
def history(bus_url: str, batch: int, ack_wait: float, history_path: Path,
            history_raw_days: int, history_retention_days: int) -> None:
    """Record prints, BBO changes and fills into the history store."""
    from tick2trade.host.services import workers

    if history_retention_days < history_raw_days:
        raise click.BadParameter("retention must be at least --history-raw-days",
                                 param_hint="--history-retention-days")
    workers.run("history", bus_url, history_path=history_path,
                history_options={"raw_days": history_raw_days,
                                 "retention_days": history_retention_days},
                batch=batch, ack_wait=ack_wait, ready=_ready("history", bus_url))


@worker.command()
@bus_options
@click.option("--db", "url", help=DB_HELP)
def risk(bus_url: str, batch: int, ack_wait: float, url: str | None) -> None:
    """Watch executions: a position past max_position engages the kill switch and
    alerts the user."""
    from tick2trade.host.services import workers
    from tick2trade.host.services.db import default_url

    workers.run("risk", bus_url, db_url=url or default_url(), batch=batch,
                ack_wait=ack_wait, ready=_ready("risk", bus_url))
