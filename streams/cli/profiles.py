"""`profile get|similar|score|rank`: read profiles from the store and score texts against
them, for people at a terminal and for scripts (--json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.group import main
from interest_stream.streams.cli.output import out, profiles_table, quiet_driver_logs
from interest_stream.streams.errors import InterestStreamError, SourceError
from interest_stream.streams.interest.scoring import ScoreWeights

_DEFAULT_WEIGHTS = ScoreWeights()
_FROM = " [default: the scoring profile's, else {}]"
_SCORE_OPTIONS = [
    click.option(
        "--long-weight",
        type=float,
        help="Weight of cos(long)." + _FROM.format(_DEFAULT_WEIGHTS.long),
    ),
    click.option(
        "--short-weight",
        type=float,
        help="Weight of cos(short)." + _FROM.format(_DEFAULT_WEIGHTS.short),
    ),
    click.option(
        "--context-weight",
        type=float,
        help="Weight of the cosine to the contextual profile (attention over clusters)."
        + _FROM.format(_DEFAULT_WEIGHTS.context),
    ),
    click.option(
        "--temperature",
        type=float,
        help="Attention temperature over the clusters (smaller: nearer the best cluster)."
        + _FROM.format(_DEFAULT_WEIGHTS.temperature),
    ),
]


def _weights(
    base: ScoreWeights,
    long_weight: float | None,
    short_weight: float | None,
    context_weight: float | None,
    temperature: float | None,
) -> ScoreWeights:
    """The client's weights (scoring profile or defaults) with the flags given on top."""
    return replace(
        base,
        long=base.long if long_weight is None else long_weight,
        short=base.short if short_weight is None else short_weight,
        context=base.context if context_weight is None else context_weight,
        temperature=base.temperature if temperature is None else temperature,
    )


def _score_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_SCORE_OPTIONS):
        command = option(command)
    return command


def _profile_client(store_url: str | None, encoder_kind: app.EncoderKind | None = None) -> Any:
    from interest_stream.streams.client import ProfileClient

    quiet_driver_logs()
    settings = app.load_settings(store_url=store_url)
    encoder = app.build_encoder(settings, encoder_kind) if encoder_kind else None
    return ProfileClient(app.open_store(settings), settings=settings, encoder=encoder)


def _read_time(value: str | None) -> float | None:
    """--at: RFC 3339 or epoch seconds; None (now) when not given."""
    if value is None:
        return None
    from interest_stream.schemas.events import parse_timestamp

    try:
        return float(value) if value.replace(".", "", 1).isdigit() else parse_timestamp(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r}: expected RFC 3339 (2026-11-30T12:00:00Z) or epoch seconds",
            param_hint="--at",
        ) from exc


read_at = click.option(
    "--at",
    "at",
    help="Read the profile as of this time (RFC 3339 or epoch seconds) [default: now].",
)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@main.group()
def profile() -> None:
    """Read profiles from the store and score texts against them."""


@profile.command("get")
@click.argument("user_id")
@options.store
@read_at
@options.as_json("Print the profile-update record as JSON.")
@click.option(
    "--vectors/--no-vectors",
    default=True,
    show_default=True,
    help="Include the short- and long-term vectors in --json output.",
)
def profile_get(
    user_id: str, store_url: str | None, at: str | None, as_json: bool, vectors: bool
) -> None:
    """Show one user's profile, read now (or --at): weights decayed to that time."""
    import time

    from interest_stream.schemas.updates import profile_update

    settings = app.load_settings(store_url=store_url)
    quiet_driver_logs()
    store = app.open_store(settings)
    try:
        found = store.get([user_id]).get(user_id)
    finally:
        store.close()
    if found is None:
        raise InterestStreamError(f"no profile for user {user_id!r} in {settings.store_url}")
    if as_json:
        when = _read_time(at) or time.time()
        record = profile_update(found, include_vectors=vectors, read_at=when)
        out.print_json(record.model_dump_json())
    else:
        out.print(profiles_table([found]))


@profile.command("similar")
@click.argument("user_id")
@options.store
@click.option("--k", type=int, default=10, show_default=True, help="How many users.")
@click.option(
    "--horizon",
    type=click.Choice(["long", "short"]),
    default="long",
    show_default=True,
    help="Compare long-term or short-term profiles.",
)
@options.as_json("Print the neighbours as JSON.")
def profile_similar(
    user_id: str, store_url: str | None, k: int, horizon: str, as_json: bool
) -> None:
    """Users whose profile is nearest USER_ID's (cosine).

    Cassandra answers from its SAI vector index (approximate nearest neighbours); SQLite
    by an exact scan over every stored profile.
    """
    with _profile_client(store_url) as client:
        similar = client.similar(user_id, k=k, horizon=horizon)
    if as_json:
        rows = [s.as_dict() for s in similar]
        out.print_json(json.dumps({"user_id": user_id, "horizon": horizon, "similar": rows}))
        return
    table = Table(title=f"users nearest {escape(user_id)} ({horizon} term)")
    table.add_column("#", justify="right")
    table.add_column("user")
    table.add_column("cosine", justify="right")
    table.add_column("top interests")
    for rank, item in enumerate(similar, start=1):
        labels = "\n".join(escape(label[:60]) for label in item.labels[:3])
        table.add_row(str(rank), escape(item.user_id), f"{item.similarity:.3f}", labels)
    out.print(table)


@profile.command("score")
@click.argument("user_id")
@click.option("--text", "texts", multiple=True, required=True, help="A text to score (repeat).")
@options.store
@_score_options
@read_at
@options.as_json("Print the scores as JSON.")
@options.encoder
def profile_score(
    user_id: str,
    texts: tuple[str, ...],
    store_url: str | None,
    long_weight: float | None,
    short_weight: float | None,
    context_weight: float | None,
    temperature: float | None,
    at: str | None,
    as_json: bool,
    encoder_kind: app.EncoderKind,
) -> None:
    """Score texts against USER_ID's profile, in the order given.

    score = weighted mean of cos(text, long), cos(text, short) and cos(text, contextual
    profile), the parts the profile has; the same function as the Python client. The
    weights are the configured scoring profile's (SCORING_PROFILE, from `evaluate --fit`)
    or the shipped defaults; flags override single ones.
    """
    with _profile_client(store_url, encoder_kind) as client:
        weights = _weights(client.weights, long_weight, short_weight, context_weight, temperature)
        scores = client.explain(user_id, list(texts), weights=weights, at=_read_time(at))
    rows = [{"text": text, **scores.row(i)} for i, text in enumerate(texts)]
    if as_json:
        out.print_json(json.dumps({"user_id": user_id, "weights": vars(weights), "scores": rows}))
        return
    out.print(_scores_table(f"scores for {escape(user_id)}", rows))


def _scores_table(title: str, rows: list[dict[str, Any]], with_id: bool = False) -> Table:
    table = Table(title=title)
    if with_id:
        table.add_column("#", justify="right")
        table.add_column("id")
    for name in ("score", "long", "short", "context"):
        table.add_column(name, justify="right")
    table.add_column("text")
    for rank, row in enumerate(rows, start=1):
        cells = [_cell(row[name]) for name in ("score", "long", "short", "context")]
        ident = [str(rank), escape(row["id"])] if with_id else []
        table.add_row(*ident, *cells, escape((row.get("text") or "")[:70]))
    return table


@profile.command("rank")
@click.argument("user_id")
@click.option(
    "--candidates",
    "candidates_path",
    required=True,
    help='JSON lines {"id": ..., "text": ...} (or "vector": [...]), optionally with'
    ' "popularity": N (interactions; the score then adds log(1 + N)); - for stdin.',
)
@options.store
@click.option("--top", type=int, help="Show only the best N [default: all].")
@_score_options
@read_at
@options.as_json("Print the ranking as JSON.")
@options.encoder
def profile_rank(
    user_id: str,
    candidates_path: str,
    store_url: str | None,
    top: int | None,
    long_weight: float | None,
    short_weight: float | None,
    context_weight: float | None,
    temperature: float | None,
    at: str | None,
    as_json: bool,
    encoder_kind: app.EncoderKind,
) -> None:
    """Rank candidates for USER_ID, best first (the score of `profile score`)."""
    from interest_stream.streams.client import read_candidates

    if candidates_path == "-":
        candidates = read_candidates(click.get_text_stream("stdin"), "stdin")
    else:
        try:
            with open(candidates_path, encoding="utf-8") as stream:
                candidates = read_candidates(stream, candidates_path)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise SourceError(f"{candidates_path}: cannot read ({reason})") from exc
    with _profile_client(store_url, encoder_kind) as client:
        weights = _weights(client.weights, long_weight, short_weight, context_weight, temperature)
        ranked = client.rank(user_id, candidates, weights=weights, top=top, at=_read_time(at))
    rows = [item.as_dict() for item in ranked]
    if as_json:
        out.print_json(json.dumps({"user_id": user_id, "weights": vars(weights), "ranked": rows}))
        return
    title = f"{len(candidates)} candidates for {escape(user_id)}"
    out.print(_scores_table(title, rows, with_id=True))
