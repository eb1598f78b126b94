"""Where the host platform keeps its state and which servers it shares it through: the
``[server]`` section of the configuration file (the same TOML file as the device's,
``host/config.py``), with environment overrides.

::

    [server]
    database_url = "postgresql+psycopg://t2t@db.example.com/t2t"  # default: SQLite in var_dir
    redis_url = "redis://127.0.0.1:6379/0"    # shared rate limits, throttles, tokens, pushes
    bus_url = "nats://127.0.0.1:4222"         # stored for the event bus; not used yet
    var_dir = "/var/lib/tick2trade"           # relative: to the file's folder
    jwt_secret_file = "/etc/tick2trade/jwt-secret"   # default: var_dir/jwt-secret

Each key has an environment variable that wins over the file (``ENV``), and a command's
own option wins over both. The JWT secret itself may come from ``T2T_JWT_SECRET``
(never from the file: a config file is shown and copied more than a secret should be).

Design decisions
----------------
* The state folder is never the current directory by accident: without ``var_dir`` or
  ``T2T_VAR_DIR`` it is ``$XDG_STATE_HOME/tick2trade`` (``~/.local/state/tick2trade``).
  Before this, ``./var`` was used; ``Settings.stale_var`` names a ``./var`` that holds
  state and is no longer used, so ``t2t api`` can say so rather than start afresh.
* Several API processes share one secret only if they read the same file or variable:
  ``Settings.secret`` makes the file once (mode 600) where it is missing.
* Every problem is reported with its key and what is accepted, as the device sections are.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

KEYS = ("database_url", "redis_url", "bus_url", "var_dir", "jwt_secret_file")
ENV = {"database_url": "T2T_DATABASE_URL", "redis_url": "T2T_REDIS_URL",
       "bus_url": "T2T_BUS_URL", "var_dir": "T2T_VAR_DIR",
       "jwt_secret_file": "T2T_JWT_SECRET_FILE"}
SECRET_ENV = "T2T_JWT_SECRET"
CONFIG_ENV = "T2T_CONFIG"
SCHEMES = {"database_url": ("sqlite", "postgresql"), "redis_url": ("redis", "rediss", "unix"),
           "bus_url": ("nats", "tls")}
EXAMPLE = {"database_url": "postgresql+psycopg://t2t@127.0.0.1/t2t",
           "redis_url": "redis://127.0.0.1:6379/0", "bus_url": "nats://127.0.0.1:4222"}


class SettingsError(ValueError):
    """The ``[server]`` section or an override is not valid; ``problems`` lists each."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{where}: " + "; ".join(problems))


def default_var_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/tick2trade``, else ``~/.local/state/tick2trade``."""
    state = env.get("XDG_STATE_HOME")
    return (Path(state) if state else Path.home() / ".local" / "state") / "tick2trade"


def check_value(key: str, value, where: str, problems: list[str]) -> str | None:
    """One ``[server]`` value checked; ``where`` names it in a problem (``server.redis_url``
    or ``T2T_REDIS_URL``)."""
    if not isinstance(value, str) or not value:
        problems.append(f"{where}: {value!r} is not a non-empty string")
        return None
    if key in SCHEMES:
        scheme = value.partition(":")[0].partition("+")[0].lower()
        if ":" not in value or scheme not in SCHEMES[key]:
            problems.append(f"{where}: {value!r} is not a {'/'.join(SCHEMES[key])} URL "
                            f"(e.g. {EXAMPLE[key]})")
            return None
    return value


def check_section(table: dict, where: str, problems: list[str]) -> dict[str, str]:
    """The ``[server]`` table's known keys checked (unknown ones are problems)."""
    out = {}
    for key, value in table.items():
        if key not in KEYS:
            problems.append(f"{where}.{key}: unknown key; known: {', '.join(KEYS)}")
        elif (v := check_value(key, value, f"{where}.{key}", problems)) is not None:
            out[key] = v
    return out


@dataclass(frozen=True)
class Settings:
    """Resolved settings; ``origin`` says where each came from (a file, a variable, an
    option, or the default) for the start-up notes."""
    var_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    bus_url: str | None = None
    jwt_secret_file: Path | None = None
    jwt_secret: str | None = field(default=None, repr=False)
    origin: dict[str, str] = field(default_factory=dict)

    def database(self) -> str:
        """The database URL: the configured one, else SQLite in ``var_dir/t2t.db``."""
        if self.database_url:
            return self.database_url
        self.var_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.var_dir / 't2t.db').resolve()}"

    @property
    def postgres(self) -> bool:
        return (self.database_url or "").lower().startswith("postgresql")

    def secret_path(self) -> Path:
        return self.jwt_secret_file or self.var_dir / "jwt-secret"

    def secret(self) -> str:
        """``T2T_JWT_SECRET``, else the secret file's text (made once, mode 600)."""
        if self.jwt_secret:
            return self.jwt_secret
        path = self.secret_path()
        if not path.exists():
            # made aside and linked into place: of processes starting at once, one
            # secret wins and all read it
            path.parent.mkdir(parents=True, exist_ok=True)
            aside = path.with_name(f".{path.name}.{os.getpid()}")
            aside.touch(mode=0o600)
            aside.write_text(secrets.token_hex(32))
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            finally:
                aside.unlink()
        text = path.read_text().strip()
        if not text:
            raise SettingsError(str(path), ["the JWT secret file is empty"])
        return text

    def stale_var(self, cwd: Path | None = None) -> Path | None:
        """A ``./var`` with state in it (what earlier versions used by default) that is
        not ``var_dir``, or None."""
        old = (cwd or Path.cwd()) / "var"
        if not any((old / name).exists() for name in ("t2t.db", "jwt-secret")):
            return None
        return None if old.resolve() == self.var_dir.resolve() else old


def read_section(path: Path) -> dict[str, str]:
    """The checked ``[server]`` section of the file at ``path`` (other sections are the
    device's: ``t2t config`` checks them); relative paths are made relative to the
    file's folder."""
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SettingsError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(str(path), [f"not TOML: {exc}"]) from None
    table = doc.get("server", {})
    problems: list[str] = []
    if not isinstance(table, dict):
        raise SettingsError(str(path), ["server: must be a table ([server])"])
    out = check_section(table, "server", problems)
    if problems:
        raise SettingsError(str(path), problems)
    for key in ("var_dir", "jwt_secret_file"):
        if key in out:
            out[key] = str(path.parent / Path(out[key]).expanduser())
    return out


def load(config: Path | None = None, env: Mapping[str, str] = os.environ,
         **options: str | Path | None) -> Settings:
    """The settings from ``config`` (or the file ``T2T_CONFIG`` names), overridden by the
    environment (``ENV``), overridden by ``options`` that are not None."""
    values: dict[str, str] = {}
    origin: dict[str, str] = {}
    config = config or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    if config is not None:
        for key, value in read_section(config).items():
            values[key], origin[key] = value, str(config)
    problems: list[str] = []
    for key, name in ENV.items():
        if env.get(name) and (v := check_value(key, env[name], name, problems)) is not None:
            values[key], origin[key] = v, f"${name}"
    for key, value in options.items():
        if key not in KEYS:
            raise TypeError(f"no setting {key!r}")
        if value is not None:
            values[key], origin[key] = str(value), "option"
    if problems:
        raise SettingsError("environment", problems)
    if "var_dir" not in values:
        origin["var_dir"] = "default"
    var_dir = Path(values["var_dir"]).expanduser() if "var_dir" in values \
        else default_var_dir(env)
    secret = env.get(SECRET_ENV) or None
    if secret:
        origin["jwt_secret"] = f"${SECRET_ENV}"
    return Settings(var_dir=var_dir, database_url=values.get("database_url"),
                    redis_url=values.get("redis_url"), bus_url=values.get("bus_url"),
                    jwt_secret_file=Path(values["jwt_secret_file"]).expanduser()
                    if "jwt_secret_file" in values else None,
                    jwt_secret=secret, origin=origin)
