"""Lossless binary form of a `UserProfile`, shared by every store backend.

Decayed sums stay float64 (exact replay comparisons need them); summary vectors stay
float32 as the encoder produced them. Layout: a .npz archive of arrays plus a JSON member
for the scalars, so the format is inspectable with numpy alone.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from streams.clusters import Cluster, SummaryEntry
from streams.interest import HorizonState, InterestState
from streams.profile import UserProfile

FORMAT_VERSION = 1


def _horizon_meta(state: HorizonState) -> dict[str, Any]:
    return {"weight": state.weight, "t_ref": state.t_ref}


def _horizon(meta: dict[str, Any], decayed_sum: np.ndarray) -> HorizonState:
    return HorizonState(decayed_sum.astype(np.float64), float(meta["weight"]), meta["t_ref"])


def encode_profile(profile: UserProfile) -> bytes:
    """Serialize a profile to bytes."""
    state = profile.state
    domains = sorted(profile.domains)
    dim = profile.dim
    arrays: dict[str, Any] = {
        "short": state.short.decayed_sum,
        "long": state.long.decayed_sum,
        "domain_short": np.array([profile.domains[d].short.decayed_sum for d in domains]).reshape(
            len(domains), dim
        ),
        "domain_long": np.array([profile.domains[d].long.decayed_sum for d in domains]).reshape(
            len(domains), dim
        ),
        "summary": np.array([e.vector for e in profile.summary], dtype=np.float32).reshape(
            len(profile.summary), dim
        ),
        "centroids": np.array([c.centroid for c in profile.clusters]).reshape(
            len(profile.clusters), dim
        ),
    }
    meta = {
        "format": FORMAT_VERSION,
        "user_id": profile.user_id,
        "model_id": profile.model_id,
        "dim": dim,
        "version": profile.version,
        "updated_at": profile.updated_at,
        "event_count": profile.event_count,
        "short": _horizon_meta(state.short),
        "long": _horizon_meta(state.long),
        "domains": [
            {
                "name": d,
                "short": _horizon_meta(profile.domains[d].short),
                "long": _horizon_meta(profile.domains[d].long),
            }
            for d in domains
        ],
        "summary": [[e.event_id, e.ts, e.weight, e.text] for e in profile.summary],
        "clusters": [[c.weight, c.label, c.size] for c in profile.clusters],
        "applied_offsets": dict(profile.applied_offsets),
        "recent_event_ids": dict(profile.recent_event_ids),
    }
    buffer = io.BytesIO()
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode_profile(blob: bytes) -> UserProfile:
    """Inverse of `encode_profile`."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        meta = json.loads(archive["meta"].tobytes().decode())
        if meta["format"] != FORMAT_VERSION:
            raise ValueError(f"unknown profile format {meta['format']}")
        interests = InterestState(
            _horizon(meta["short"], archive["short"]), _horizon(meta["long"], archive["long"])
        )
        domains = {
            d["name"]: InterestState(
                _horizon(d["short"], archive["domain_short"][i]),
                _horizon(d["long"], archive["domain_long"][i]),
            )
            for i, d in enumerate(meta["domains"])
        }
        summary = tuple(
            SummaryEntry(eid, float(ts), float(w), text, archive["summary"][i])
            for i, (eid, ts, w, text) in enumerate(meta["summary"])
        )
        clusters = tuple(
            Cluster(archive["centroids"][i].astype(np.float64), float(w), label, int(size))
            for i, (w, label, size) in enumerate(meta["clusters"])
        )
    return UserProfile(
        user_id=meta["user_id"],
        model_id=meta["model_id"],
        dim=int(meta["dim"]),
        version=int(meta["version"]),
        updated_at=float(meta["updated_at"]),
        event_count=int(meta["event_count"]),
        interests=interests,
        domains=domains,
        summary=summary,
        clusters=clusters,
        applied_offsets={k: int(v) for k, v in meta["applied_offsets"].items()},
        recent_event_ids={k: float(v) for k, v in meta["recent_event_ids"].items()},
    )
