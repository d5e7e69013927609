"""The output contract: profile-update records on the compacted `profile-updates` topic.

Key = user_id; value = `ProfileUpdate` as JSON; an erased user gets a tombstone (null
value). `profile_update` builds the record from a stored profile so the embedded mode,
the worker and `profile get --json` all print the same shape. A record is read at a time
(`read_at`, by default the time of the write): masses and cluster weights are decayed to it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from interest_stream.streams.interest.profile import UserProfile
from interest_stream.streams.interest.scoring import short_share


class ClusterSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str = Field(description="Most representative text of the interest (its medoid)")
    weight: float = Field(description="Decayed mass of the interest at read_at")
    size: int = Field(description="Events of the summary in this interest")


class ProfileUpdate(BaseModel):
    """What consumers of `profile-updates` receive after every change of a profile."""

    model_config = ConfigDict(frozen=True, title="ProfileUpdate")

    user_id: str
    version: int = Field(description="Increases by one per stored change")
    model_id: str = Field(description="Encoder that produced the vectors")
    updated_at: str = Field(description="RFC 3339 time of the write")
    read_at: str | None = Field(
        default=None, description="RFC 3339 time the masses and weights are decayed to"
    )
    event_time: str | None = Field(description="Newest event time folded in (RFC 3339)")
    event_count: int = Field(description="Events applied to this profile so far")
    drift: float | None = Field(description="Cosine of short- vs long-term profile")
    long_weight: float = Field(default=0.0, description="Decayed long-term mass at read_at")
    short_weight: float = Field(default=0.0, description="Decayed short-term mass at read_at")
    short_share: float = Field(
        default=1.0,
        description="How much the short-term profile counts in a score at read_at (0..1)",
    )
    clusters: list[ClusterSummary] = Field(description="Top interests, heaviest first")
    disliked: list[ClusterSummary] = Field(
        default_factory=list, description="What the user panned, most disliked first"
    )
    vectors_included: bool = Field(
        default=True,
        description="False when the sender left the vectors out (short and long are then"
        " null even if the profile has them)",
    )
    short: list[float] | None = Field(default=None, description="Short-term unit vector")
    long: list[float] | None = Field(default=None, description="Long-term unit vector")


def _rfc3339(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="milliseconds")


def profile_update(
    profile: UserProfile,
    *,
    include_vectors: bool = True,
    top_clusters: int = 8,
    read_at: float | None = None,
) -> ProfileUpdate:
    """The update record announcing `profile`, read at `read_at` (default: its write)."""
    state = profile.state
    newest = state.long.t_ref
    at = read_at if read_at is not None else profile.updated_at
    at = max(at, newest or at)
    decay_short, decay_long = profile.decays
    # The figures of `ProfileVectors.from_profile` at `at`, computed here without its
    # centroid matrices (a worker builds one record per written profile): masses decayed to
    # `at`, cluster weights faded by the time since the newest event, in float32 as there.
    fade = math.exp(-decay_long * max(0.0, at - newest)) if newest is not None else 1.0
    long_weight = state.long.weight_at(at, decay_long)
    short_weight = state.short.weight_at(at, decay_short)
    short, long = state.short.profile(), state.long.profile()
    # Built without validation (model_construct): every field comes from a typed profile,
    # and validating 768 floats cost more than the rest of the record. `tolist` gives the
    # same Python floats as float() of each float32 element, so the JSON is the same.
    liked = [
        ClusterSummary.model_construct(
            label=c.label, weight=round(float(np.float32(c.weight * fade)), 6), size=c.size
        )
        for c in profile.liked[:top_clusters]
    ]
    disliked = [
        ClusterSummary.model_construct(
            label=c.label, weight=round(float(np.float32(c.weight * fade)), 6), size=c.size
        )
        for c in profile.disliked
    ]
    return ProfileUpdate.model_construct(
        user_id=profile.user_id,
        version=profile.version,
        model_id=profile.model_id,
        updated_at=_rfc3339(profile.updated_at) or "",
        read_at=_rfc3339(at),
        event_time=_rfc3339(newest),
        event_count=profile.event_count,
        drift=None if short is None or long is None else float(short @ long),
        long_weight=round(long_weight, 6),
        short_weight=round(short_weight, 6),
        short_share=round(short_share(short_weight, long_weight, profile.half_lives), 6),
        clusters=liked,
        disliked=disliked,
        vectors_included=include_vectors,
        short=_floats(short) if include_vectors else None,
        long=_floats(long) if include_vectors else None,
    )


def _floats(unit: npt.NDArray[np.float64] | None) -> list[float] | None:
    return None if unit is None else unit.astype(np.float32).tolist()
