"""A click group whose commands are named up front and imported only when needed.

``t2t status`` should not pay for (or need) the simulator that ``t2t run`` loads, so the
group knows each command only as ``"module:attribute"`` and imports that module the
first time the command is looked up: when it runs, or when ``t2t --help`` lists it.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """A ``click.Group`` with ``commands``, a mapping of command name to
    ``"module:attribute"``, resolved on first use (then kept like an added command)."""

    def __init__(self, *args, commands: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            self.add_command(self._load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, name: str) -> click.Command:
        module, _sep, attribute = self.lazy_commands[name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"t2t {name}: {module}:{attribute} is not a click command")
        return command
