"""host/settings.py: the [server] section of the configuration file, its environment
overrides and defaults, and ``t2t api --config``."""

from pathlib import Path

import httpx
import pytest

from tick2trade.host import config, settings
from tick2trade.testing.apiproc import start_api, stop_api

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "config.example.toml"


def test_file_then_environment_then_options(tmp_path):
    cfg = tmp_path / "etc" / "t2t.toml"
    cfg.parent.mkdir()
    cfg.write_text('[server]\ndatabase_url = "postgresql+psycopg://a@h/db"\n'
                   'redis_url = "redis://127.0.0.1:1/0"\nbus_url = "nats://127.0.0.1:4222"\n'
                   'var_dir = "state"\njwt_secret_file = "secret"\n')
    s = settings.load(cfg, env={})
    assert s.database_url == "postgresql+psycopg://a@h/db" and s.postgres
    assert s.redis_url == "redis://127.0.0.1:1/0" and s.bus_url == "nats://127.0.0.1:4222"
    # relative paths are the file's folder's, not the working directory's
    assert s.var_dir == cfg.parent / "state" and s.secret_path() == cfg.parent / "secret"
    env = {"T2T_REDIS_URL": "redis://127.0.0.1:2/1", "T2T_VAR_DIR": str(tmp_path / "v"),
           "T2T_DATABASE_URL": "sqlite:///x.db"}
    s = settings.load(cfg, env=env, database_url="postgresql+psycopg://b@h/db")
    assert s.redis_url == "redis://127.0.0.1:2/1" and s.var_dir == tmp_path / "v"
    assert s.database_url == "postgresql+psycopg://b@h/db" and s.origin["database_url"] == \
        "option" and s.origin["redis_url"] == "$T2T_REDIS_URL"
    # T2T_CONFIG names the file when no option does
    assert settings.load(env={"T2T_CONFIG": str(cfg)}).bus_url == "nats://127.0.0.1:4222"


def test_state_folder_is_never_the_working_directory_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = settings.load(env={"XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert s.var_dir == tmp_path / "xdg" / "tick2trade" and s.origin["var_dir"] == "default"
    assert settings.load(env={}).var_dir == Path.home() / ".local" / "state" / "tick2trade"
    assert s.database() == f"sqlite:///{tmp_path / 'xdg' / 'tick2trade' / 't2t.db'}"
    assert s.stale_var() is None
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "jwt-secret").write_text("old")
    assert s.stale_var() == tmp_path / "var"
    assert settings.load(env={"T2T_VAR_DIR": "var"}).stale_var() is None


def test_secret_from_environment_or_a_file_made_once(tmp_path):
    s = settings.load(env={"T2T_VAR_DIR": str(tmp_path), "T2T_JWT_SECRET": "s3cret"})
    assert s.secret() == "s3cret" and not (tmp_path / "jwt-secret").exists()
    s = settings.load(env={"T2T_VAR_DIR": str(tmp_path)})
    made = s.secret()
    assert len(made) == 64 and (tmp_path / "jwt-secret").stat().st_mode & 0o077 == 0
    assert settings.load(env={"T2T_JWT_SECRET_FILE": str(tmp_path / "jwt-secret")}
                         ).secret() == made


def test_bad_values_say_which_key_and_what_is_accepted(tmp_path):
    cfg = tmp_path / "t2t.toml"
    cfg.write_text('[server]\nredis_url = "http://x"\ndatabase = "y"\n')
    with pytest.raises(settings.SettingsError) as e:
        settings.load(cfg, env={})
    assert "server.redis_url: 'http://x' is not a redis/rediss/unix URL" in str(e.value)
    assert "server.database: unknown key" in str(e.value)
    with pytest.raises(settings.SettingsError, match="T2T_DATABASE_URL: 'mysql://x'"):
        settings.load(env={"T2T_DATABASE_URL": "mysql://x"})
    # the device configuration's parser knows the section: one file for both
    with pytest.raises(config.ConfigError, match="server.bus_url"):
        config.parse('[server]\nbus_url = "redis://x"\n')
    assert config.load(EXAMPLE).server == {}
    assert config.parse('[server]\nvar_dir = "/srv/t2t"\n').server == {"var_dir": "/srv/t2t"}


def test_t2t_api_takes_its_state_folder_and_database_from_config(tmp_path):
    cfg = tmp_path / "t2t.toml"
    cfg.write_text(f'[server]\nvar_dir = "state"\n'
                   f'database_url = "sqlite:///{tmp_path / "cfg.db"}"\n')
    # the environment apiproc sets would override the file: take it away
    proc, base = start_api(tmp_path, "--venue", "off", "--no-history", "--config", str(cfg),
                           env={"T2T_DATABASE_URL": "", "T2T_VAR_DIR": ""})
    try:
        r = httpx.post(f"{base}/auth/register", json={"username": "cfg", "password": "x" * 12,
                                                      "email": "c@example.com"})
        assert r.status_code == 201, r.text
    finally:
        out = stop_api(proc)
    assert (tmp_path / "state" / "jwt-secret").exists() and (tmp_path / "cfg.db").exists()
    assert not (tmp_path / "var").exists()
    assert f"state in {tmp_path / 'state'} ({cfg})" in out, out


def test_cli_says_when_the_old_var_folder_is_left_behind(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tick2trade.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("T2T_VAR_DIR", str(tmp_path / "state"))
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "t2t.db").write_bytes(b"")
    r = CliRunner().invoke(main, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    assert f"{tmp_path / 'var'} holds a database or JWT secret of an earlier version" in \
        r.output
    assert (tmp_path / "state" / "t2t.db").exists()
