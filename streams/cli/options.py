"""Options that several commands share, declared once. Their help shows the environment
variable and the default from `Settings`, so help, the docs and behaviour cannot disagree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from interest_stream.streams.app import ENCODER_KINDS
from interest_stream.streams.settings import Settings, env_name

F = TypeVar("F", bound=Callable[..., Any])


def default_of(field: str) -> Any:
    """The default of a Settings field, as help texts show it."""
    return Settings.model_fields[field].default


def setting_help(text: str, field: str, shown: str | None = None) -> str:
    """'text [env INTEREST_STREAM_FIELD; default value]'."""
    default = shown if shown is not None else default_of(field)
    return f"{text} [env {env_name(field)}; default {default}]"


def _hours_or_days(seconds: float) -> str:
    day = 86400.0
    return f"{seconds / day:g}d" if seconds >= day else f"{seconds / 3600:g}h"


store = click.option("--store", "store_url", help=setting_help("Profile store URL.", "store_url"))
brokers = click.option(
    "--brokers", help=setting_help("Kafka bootstrap servers (host:port,...).", "brokers")
)
topic_prefix = click.option(
    "--topic-prefix",
    help=setting_help("Prefix of every topic name.", "topic_prefix", shown="none"),
)
precision = click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "int8", "fp16"]),
    help=setting_help(
        "Encoder precision: auto picks fp16 on a GPU, else int8 if its parity bar held, else fp32.",
        "precision",
    ),
)
batch_size = click.option(
    "--batch-size", type=int, help=setting_help("Max events per batch.", "batch_size")
)
batch_wait_ms = click.option(
    "--batch-wait-ms", type=int, help=setting_help("Max wait to fill a batch.", "batch_wait_ms")
)
short_half_life = click.option(
    "--short-half-life",
    help=setting_help(
        "Half-life of the short-term horizon, e.g. 90m, 6h.",
        "short_half_life_s",
        shown=_hours_or_days(default_of("short_half_life_s")),
    ),
)
long_half_life = click.option(
    "--long-half-life",
    help=setting_help(
        "Half-life of the long-term horizon, e.g. 7d, 30d.",
        "long_half_life_s",
        shown=_hours_or_days(default_of("long_half_life_s")),
    ),
)
encoder = click.option(
    "--encoder",
    "encoder_kind",
    type=click.Choice(ENCODER_KINDS),
    default="onnx",
    show_default=True,
    help="onnx: the exported sentence encoder; hashing: model-free, for plumbing checks.",
)


def as_json(help_text: str = "Print the result as JSON.") -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def half_lives(command: F) -> F:
    """--short-half-life and --long-half-life."""
    return short_half_life(long_half_life(command))
