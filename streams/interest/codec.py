"""The stored form of a `UserProfile`, shared by every store backend, bounded in bytes.

Layout: a magic tag, the length of a zlib-compressed JSON header (scalars, labels, offsets,
cluster groups, and the dtype/shape of each array), the header, then the raw little-endian
arrays back to back; decoding is a handful of `np.frombuffer` views.

What is stored, and at which precision (docs/model.md gives the byte bounds):
- the two user-level horizons: float32 sums (the decayed sums are exact float64 in
  memory; one rounding to float32 per store round trip, 6e-8 relative). A store that
  keeps the unit vectors beside the blob anyway (Cassandra's `short` and `long` columns,
  in the same row) asks for `horizons_apart`: the blob then holds only their norms, and
  the sums are rebuilt from those columns (3 KB less per write, same precision);
- per-domain horizons: float16 unit directions with float64 norms (derived, per-domain
  views: about 1e-4 relative per round trip; a worker keeps folding onto its in-memory
  float64 copy, so rounding adds up only across restarts);
- the summary: event keys, times and weights exact, labels, 4-bit vectors with a float32
  scale (interest/summary.py); clusters as groups of summary indexes, rebuilt on decode;
- applied offsets per source and the recent event keys with their times.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.streams.interest.clusters import clusters_of
from interest_stream.streams.interest.horizons import HorizonState, InterestState
from interest_stream.streams.interest.profile import UserProfile
from interest_stream.streams.interest.summary import SummaryEntry

FORMAT_VERSION = 3
MAGIC = b"ISP3"
OLDER_MAGICS = (b"ISP2",)
"""Profiles written by earlier layouts: refused by `decode_profile` with the way out."""


class ProfileFormatError(ValueError):
    """Bytes that are not a profile of this layout."""


def _horizon_meta(state: HorizonState, *, apart: bool = False) -> list[float | None]:
    """Weight and reference time; and the sum's norm when the sum is stored apart."""
    if apart:
        return [state.weight, state.t_ref, float(np.linalg.norm(state.decayed_sum))]
    return [state.weight, state.t_ref]


def _unit_and_norm(vector: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector), norm


def encode_profile(profile: UserProfile, *, horizons_apart: bool = False) -> bytes:
    """Serialize a profile to bytes; with `horizons_apart`, without the user-level sums
    (the caller stores `state.short.profile()` and `state.long.profile()` itself and hands
    them back to `decode_profile`)."""
    state = profile.state
    dim = profile.dim
    domains = sorted(profile.domains)
    domain_units: list[npt.NDArray[np.float64]] = []
    domain_meta = []
    for name in domains:
        entry: dict[str, Any] = {"name": name}
        for horizon in ("short", "long"):
            part: HorizonState = getattr(profile.domains[name], horizon)
            unit, norm = _unit_and_norm(part.decayed_sum)
            domain_units.append(unit)
            entry[horizon] = [*_horizon_meta(part), norm]
        domain_meta.append(entry)
    summary = profile.summary
    recent = list(profile.recent_ids.items())  # in the order applied (interest/profile.py)
    arrays: dict[str, npt.NDArray[Any]] = {}
    if not horizons_apart:
        sums = np.stack([state.short.decayed_sum, state.long.decayed_sum])
        arrays["horizons"] = sums.astype("<f4")
    arrays |= {
        "domains": np.array(domain_units, dtype="<f2").reshape(2 * len(domains), dim),
        "keys": np.array([e.key for e in summary], dtype="<u8"),
        "times": np.array([e.ts for e in summary], dtype="<f8"),
        "weights": np.array([e.weight for e in summary], dtype="<f8"),
        "scales": np.array([e.scale for e in summary], dtype="<f4"),
        "codes": np.frombuffer(b"".join(e.code for e in summary), dtype=np.uint8),
        "recent_keys": np.array([k for k, _ in recent], dtype="<u8"),
        "recent_times": np.array([t for _, t in recent], dtype="<f8"),
    }
    meta = {
        "format": FORMAT_VERSION,
        "user_id": profile.user_id,
        "model_id": profile.model_id,
        "dim": dim,
        "version": profile.version,
        "updated_at": profile.updated_at,
        "event_count": profile.event_count,
        "half_lives": list(profile.half_lives),
        "forgotten_at": profile.forgotten_at,
        "short": _horizon_meta(state.short, apart=horizons_apart),
        "long": _horizon_meta(state.long, apart=horizons_apart),
        "horizons_apart": horizons_apart,
        "domains": domain_meta,
        "labels": [e.label for e in summary],
        "groups": [list(c.members) for c in profile.clusters],
        "offsets": dict(profile.applied_offsets),
        "arrays": [[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()],
    }
    header = zlib.compress(json.dumps(meta, separators=(",", ":")).encode(), 6)
    chunks = [np.ascontiguousarray(a).tobytes() for a in arrays.values()]
    return b"".join([MAGIC, struct.pack("<I", len(header)), header, *chunks])


def _read(blob: bytes) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    if blob[:4] in OLDER_MAGICS:
        raise ProfileFormatError(
            f"profile stored by an earlier layout ({blob[:4].decode()}): rebuild the store"
        )
    if blob[:4] != MAGIC:
        raise ProfileFormatError("not an interest-stream profile (bad magic)")
    (length,) = struct.unpack_from("<I", blob, 4)
    meta = json.loads(zlib.decompress(blob[8 : 8 + length]))
    arrays: dict[str, npt.NDArray[Any]] = {}
    offset = 8 + length
    for name, dtype, shape in meta["arrays"]:
        kind = np.dtype(dtype)
        count = int(np.prod(shape))
        arrays[name] = np.frombuffer(blob, kind, count, offset).reshape(shape)
        offset += count * kind.itemsize
    return meta, arrays


def _horizon(meta: list[Any], decayed_sum: npt.NDArray[Any]) -> HorizonState:
    weight, t_ref = meta[0], meta[1]
    return HorizonState(decayed_sum.astype(np.float64), float(weight), t_ref)


def _apart(
    meta: list[Any], unit: npt.ArrayLike | None, dim: int, name: str
) -> npt.NDArray[np.float64]:
    """A sum stored apart: its unit vector (None while empty) times its norm."""
    norm = float(meta[2])
    if unit is None:
        if norm >= 1e-12:
            raise ProfileFormatError(f"the {name} vector is missing but its norm is {norm}")
        return np.zeros(dim)
    vector = np.asarray(unit, dtype=np.float64)
    if vector.shape != (dim,):
        raise ProfileFormatError(f"the {name} vector has shape {vector.shape}, not ({dim},)")
    return vector * norm


def decode_profile(
    blob: bytes, *, horizons: tuple[npt.ArrayLike | None, npt.ArrayLike | None] | None = None
) -> UserProfile:
    """Inverse of `encode_profile` (clusters rebuilt from their stored groups); `horizons`
    are the (short, long) unit vectors of a profile encoded with `horizons_apart`."""
    meta, arrays = _read(blob)
    dim = int(meta["dim"])
    if meta.get("horizons_apart"):
        if horizons is None:
            raise ProfileFormatError("profile stored without its horizon vectors: pass them")
        sums = [
            _apart(meta[h], u, dim, h) for h, u in zip(("short", "long"), horizons, strict=True)
        ]
    else:
        sums = list(arrays["horizons"])
    interests = InterestState(_horizon(meta["short"], sums[0]), _horizon(meta["long"], sums[1]))
    domains = {}
    units = arrays["domains"]
    for i, entry in enumerate(meta["domains"]):
        parts = []
        for j, horizon in enumerate(("short", "long")):
            weight, t_ref, norm = entry[horizon]
            parts.append(_horizon([weight, t_ref], units[2 * i + j].astype(np.float64) * norm))
        domains[entry["name"]] = InterestState(parts[0], parts[1])
    codes = arrays["codes"].tobytes()
    width = (dim + 1) // 2
    # tolist: Python ints and floats in one call, not a numpy scalar per entry and field.
    summary = tuple(
        SummaryEntry(key, ts, weight, label, codes[i * width : (i + 1) * width], scale)
        for i, (key, ts, weight, label, scale) in enumerate(
            zip(
                arrays["keys"].tolist(),
                arrays["times"].tolist(),
                arrays["weights"].tolist(),
                meta["labels"],
                arrays["scales"].tolist(),
                strict=True,
            )
        )
    )
    half_lives = (float(meta["half_lives"][0]), float(meta["half_lives"][1]))
    t_ref = interests.long.t_ref
    clusters = (
        clusters_of(
            summary, meta["groups"], t_ref=t_ref, decay=math.log(2) / half_lives[1], dim=dim
        )
        if t_ref is not None
        else ()
    )
    return UserProfile(
        user_id=meta["user_id"],
        model_id=meta["model_id"],
        dim=dim,
        version=int(meta["version"]),
        updated_at=float(meta["updated_at"]),
        event_count=int(meta["event_count"]),
        interests=interests,
        domains=domains,
        summary=summary,
        clusters=clusters,
        applied_offsets={k: int(v) for k, v in meta["offsets"].items()},
        recent_ids=dict(
            zip(arrays["recent_keys"].tolist(), arrays["recent_times"].tolist(), strict=True)
        ),
        half_lives=half_lives,
        forgotten_at=meta["forgotten_at"],
    )
