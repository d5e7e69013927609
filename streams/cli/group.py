"""The `interest-stream` group itself: logging, one-line errors, and the commands that other
packages contribute through the `interest_stream.commands` entry points (the lab's `bench`
and `evaluate`), loaded only when asked for so that `--help` and every product command stay
free of the lab."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from typing import Any

import click
from rich.markup import escape

from interest_stream.streams.cli.output import console
from interest_stream.streams.errors import InterestStreamError

PLUGIN_GROUP = "interest_stream.commands"


class CliGroup(click.Group):
    """Turns the project's own errors into one readable line and exit code 2, and finds
    commands contributed by entry points."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InterestStreamError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(2)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(e.name for e in _plugins())})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        for plugin in _plugins():
            if plugin.name == name:
                loaded = plugin.load()
                if not isinstance(loaded, click.Command):
                    raise click.ClickException(f"entry point {plugin.value} is not a command")
                return loaded
        return None


def _plugins() -> list[Any]:
    return list(entry_points(group=PLUGIN_GROUP))


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
# The installed distribution's version, so an image's `interest-stream --version` shows
# what it holds.
@click.version_option(package_name="interest-stream", prog_name="interest-stream")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """interest-stream: live semantic interest profiles from clicks, reviews and queries.

    Settings come from INTEREST_STREAM_* environment variables; flags override them.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
