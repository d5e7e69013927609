"""Lossless binary form of a `UserProfile`, shared by every store backend.

Decayed sums stay float64 (exact replay comparisons need them); summary vectors are
float16, as the interest model keeps them. Layout: a magic tag, the length of a JSON header
(scalars, texts, and the dtype/shape of each array), the header, then the raw
little-endian array bytes back to back. Decoding is a handful of `np.frombuffer` views,
which matters because every batch reads every touched profile.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from interest_stream.streams.model.clusters import Cluster, SummaryEntry
from interest_stream.streams.model.horizons import HorizonState, InterestState
from interest_stream.streams.model.profile import UserProfile

FORMAT_VERSION = 2
MAGIC = b"ISP2"


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
        "summary": np.array([e.vector for e in profile.summary], dtype=np.float16).reshape(
            len(profile.summary), dim
        ),
        "centroids": np.array([c.centroid for c in profile.clusters], dtype=np.float32).reshape(
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
    layout = []
    chunks = []
    for name, array in arrays.items():
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        layout.append([name, data.dtype.str, list(data.shape)])
        chunks.append(data.tobytes())
    meta["arrays"] = layout
    header = json.dumps(meta, separators=(",", ":")).encode()
    return b"".join([MAGIC, struct.pack("<I", len(header)), header, *chunks])


def _read_arrays(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if blob[:4] != MAGIC:
        raise ValueError("not an interest-stream profile (bad magic)")
    (length,) = struct.unpack_from("<I", blob, 4)
    meta = json.loads(blob[8 : 8 + length])
    arrays: dict[str, np.ndarray] = {}
    offset = 8 + length
    for name, dtype, shape in meta["arrays"]:
        kind = np.dtype(dtype)
        count = int(np.prod(shape))
        arrays[name] = np.frombuffer(blob, kind, count, offset).reshape(shape)
        offset += count * kind.itemsize
    return meta, arrays


def decode_profile(blob: bytes) -> UserProfile:
    """Inverse of `encode_profile`."""
    meta, archive = _read_arrays(blob)
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
    summary_vectors = archive["summary"]
    summary = tuple(
        SummaryEntry(eid, float(ts), float(w), text, summary_vectors[i])
        for i, (eid, ts, w, text) in enumerate(meta["summary"])
    )
    centroids = archive["centroids"]
    clusters = tuple(
        Cluster(centroids[i], float(w), label, int(size))
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
