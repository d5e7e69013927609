"""`interest-stream bench clusters`: do the clusters fit the users? Generated users with one
to six planted interests (plain titles, and templated catalogue texts with genre lists) go
through the product's embedded pipeline as a new user would run it (cluster background
estimated from the texts), and each user's number of liked clusters is compared with the
number of interests planted."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from interest_stream.encoders.base import Encoder
from interest_stream.schemas.records import RawRecord
from interest_stream.store import open_store
from interest_stream.streams.core.batch import BatchCore
from interest_stream.streams.core.calibration import calibrate
from interest_stream.streams.demo import generate
from interest_stream.streams.interest.horizons import InterestParams

TARGET_WITHIN_ONE = 0.8


def planted_counts(
    encoder: Encoder,
    *,
    template: bool,
    users: int = 200,
    seed: int = 11,
    params: InterestParams | None = None,
) -> dict[str, Any]:
    """Planted vs found cluster counts over `users` generated users."""
    workload = generate(
        users=users, events_per_user=60, seed=seed, interests=(1, 6), template=template
    )
    with tempfile.TemporaryDirectory(prefix="interest-stream-clusters-") as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'profiles.db'}")
        calibrate(store, encoder, (e["text"] for e in workload.events), source="planted")
        core = BatchCore(
            encoder=encoder,
            store=store,
            params=params or InterestParams(),
            calibrate_background=True,
            profile_cache_size=users,
        )
        records = [
            RawRecord.at(json.dumps(e).encode(), "planted", i)
            for i, e in enumerate(workload.events, 1)
        ]
        for start in range(0, len(records), 1024):
            core.process(records[start : start + 1024])
        profiles = store.get([u.user_id for u in workload.users])
        store.close()
    pairs = [(len(u.early), len(profiles[u.user_id].liked)) for u in workload.users]
    within = sum(abs(found - planted) <= 1 for planted, found in pairs)
    single = [found for planted, found in pairs if planted == 1]
    table: dict[int, Counter[int]] = {}
    for planted, found in pairs:
        table.setdefault(planted, Counter())[found] += 1
    return {
        "users": len(pairs),
        "background": core.params.cluster_background,
        "within_one": round(within / len(pairs), 3),
        "exact": round(sum(p == f for p, f in pairs) / len(pairs), 3),
        "one_interest_one_cluster": round(sum(f == 1 for f in single) / max(len(single), 1), 3),
        "found_by_planted": {p: dict(sorted(c.items())) for p, c in sorted(table.items())},
    }


def bench_clusters(encoder: Encoder, users: int = 200) -> dict[str, Any]:
    results: dict[str, Any] = {
        "plain": planted_counts(encoder, template=False, users=users),
        "templated": planted_counts(encoder, template=True, users=users),
    }
    results["target_met"] = all(
        r["within_one"] >= TARGET_WITHIN_ONE and r["one_interest_one_cluster"] >= 0.8
        for r in (results["plain"], results["templated"])
    )
    return results


EVENT_BUCKETS = ((1, 19), (20, 49), (50, 99), (100, 199), (200, None))


def stored_distribution(store: Any) -> dict[str, Any]:
    """How many liked clusters the users of an existing store have, by how many events
    they have: e.g. a store that `interest-stream run` built from a real log."""
    table: dict[str, Counter[int]] = {}
    users = store.user_ids()
    for start in range(0, len(users), 256):
        for profile in store.get(users[start : start + 256]).values():
            low, high = next(
                (lo, hi)
                for lo, hi in EVENT_BUCKETS
                if profile.event_count >= lo and (hi is None or profile.event_count <= hi)
            )
            bucket = f"{low}+" if high is None else f"{low}-{high}"
            table.setdefault(bucket, Counter())[len(profile.liked)] += 1
    return {
        "users": len(users),
        "clusters_by_events": {
            bucket: dict(sorted(table[bucket].items()))
            for bucket in (f"{lo}+" if hi is None else f"{lo}-{hi}" for lo, hi in EVENT_BUCKETS)
            if bucket in table
        },
    }
