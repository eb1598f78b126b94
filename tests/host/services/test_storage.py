"""The schema comes from the migrations and matches the models, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tick2trade.host.services.db import Base, make_engine, upgrade


def test_migrated_schema_matches_the_models(platform):
    with platform.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_and_upgrade_again(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine, "head")          # a second upgrade is a no-op
    from alembic import command
    from alembic.config import Config

    from tick2trade.host.services.db import MIGRATIONS
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert "audit_log" in inspect(engine).get_table_names()
    engine.dispose()
