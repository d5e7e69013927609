"""`interest-stream bench profile`: how many bytes a stored profile takes, from the real
codec, as events pile up: one user in one domain, and one user of a catalogue log spread
over 18 genre domains (shaped like a public movie rating log: titles with years and genre
lists, every event a rating). The sizes must stop growing once the model's bounds are
reached (summary entries, domains, remembered event ids)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from interest_stream.encoders.base import Encoder
from interest_stream.streams.demo import TOPICS, catalogue
from interest_stream.streams.interest.codec import encode_profile
from interest_stream.streams.interest.horizons import DAY, InterestParams
from interest_stream.streams.interest.profile import UserProfile, WeightedEvent, fold_events
from interest_stream.streams.interest.sentiment import event_weight

GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
START = 1_700_000_000.0

TARGETS = {"one domain, 1,000 events": 12 * 1024, "18 domains, 500 events": 40 * 1024}


@dataclass(frozen=True)
class Logged:
    """One event of a scenario: text, time, type, rating, domain."""

    text: str
    ts: float
    kind: str
    rating: float | None
    domain: str | None


def one_domain_log(events: int, seed: int = 1) -> list[Logged]:
    """A user's clicks, reviews and queries in one domain, over a year, on templated
    catalogue texts of three topics."""
    rng = random.Random(seed)
    items = [i for i in catalogue(60, template=True) if i.topic in ("space films", "jazz")]
    log = []
    for n in range(events):
        ts = START + n * (365 * DAY / events)
        item = rng.choice(items)
        roll = rng.random()
        if roll < 0.7:
            log.append(Logged(item.text, ts, "click", None, "movies"))
        elif roll < 0.85:
            query = rng.choice(TOPICS[item.topic]["queries"])
            log.append(Logged(query, ts, "query", None, "movies"))
        else:
            log.append(Logged(item.text, ts, "review", float(rng.randint(1, 5)), "movies"))
    return log


def catalogue_log(events: int, seed: int = 2) -> list[Logged]:
    """Ratings of distinct titles with genre lists, first genre as the domain: 18 domains."""
    rng = random.Random(seed)
    log = []
    for n in range(events):
        genres = rng.sample(GENRES, rng.randint(1, 3))
        text = f"Title number {n} ({rng.randint(1930, 1998)}). Genres: {', '.join(genres)}"
        ts = START + n * (200 * DAY / events)
        log.append(Logged(text, ts, "review", float(rng.randint(1, 5)), genres[0].lower()))
    return log


def sizes(
    log: Sequence[Logged], encoder: Encoder, checkpoints: Sequence[int], batch: int = 50
) -> list[dict[str, Any]]:
    """Stored bytes after each checkpoint's number of events, folded `batch` at a time."""
    params = InterestParams()
    texts = sorted({e.text for e in log})
    vectors = dict(zip(texts, encoder.encode(texts), strict=True))
    profile = UserProfile.new("u", encoder.model_id, encoder.dim, params)
    rows = []
    done = 0
    for checkpoint in sorted(checkpoints):
        while done < min(checkpoint, len(log)):
            chunk = log[done : done + min(batch, checkpoint - done)]
            events = [
                WeightedEvent(
                    f"e{done + i}",
                    e.ts,
                    event_weight(e.kind, params, rating=e.rating),
                    e.text,
                    vectors[e.text],
                    domain=e.domain,
                )
                for i, e in enumerate(chunk)
            ]
            profile = fold_events(profile, events, params, updated_at=chunk[-1].ts).profile
            done += len(chunk)
        blob = encode_profile(profile)
        rows.append({"events": done, "bytes": len(blob), **breakdown(profile, len(blob))})
    return rows


def breakdown(profile: UserProfile, total: int) -> dict[str, int]:
    """Where the bytes go (arrays exactly; the compressed header is the rest)."""
    dim = profile.dim
    parts = {
        "horizons": 2 * dim * 4,
        "domains": 2 * len(profile.domains) * dim * 2,
        "summary": len(profile.summary) * ((dim + 1) // 2 + 4 + 8 + 8 + 8),
        "recent_ids": len(profile.recent_ids) * 16,
    }
    parts["header"] = total - sum(parts.values())
    parts["domain_count"] = len(profile.domains)
    parts["summary_entries"] = len(profile.summary)
    parts["clusters"] = len(profile.liked)
    return parts


def bench_profile(encoder: Encoder) -> dict[str, Any]:
    """Sizes of both scenarios, with the bounds they are held to."""
    one = sizes(one_domain_log(5000), encoder, (10, 100, 1000, 2000, 5000))
    many = sizes(catalogue_log(2000), encoder, (26, 100, 500, 1000, 2000))
    at = {
        "one domain, 1,000 events": next(r["bytes"] for r in one if r["events"] == 1000),
        "18 domains, 500 events": next(r["bytes"] for r in many if r["events"] == 500),
    }
    return {
        "model_id": encoder.model_id,
        "one_domain": one,
        "eighteen_domains": many,
        "targets": {
            name: {"bytes": at[name], "limit": limit, "met": at[name] <= limit}
            for name, limit in TARGETS.items()
        },
        "bounded": {
            "one_domain": _flat(one),
            "eighteen_domains": _flat(many),
        },
    }


def _flat(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the size stopped growing: the last two checkpoints within 5%."""
    last, before = rows[-1]["bytes"], rows[-2]["bytes"]
    return bool(np.isclose(last, before, rtol=0.05))
