"""The output contract: profile-update records on the compacted `profile-updates` topic.

Key = user_id; value = `ProfileUpdate` as JSON; an erased user gets a tombstone (null
value). `profile_update` builds the record from a stored profile so the embedded mode,
the worker and `profile get --json` all print the same shape.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from interest_stream.streams.model.profile import UserProfile


class ClusterSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str = Field(description="Most representative text of the interest (its medoid)")
    weight: float = Field(description="Decayed mass of the interest at updated_at")
    size: int = Field(description="Events of the summary in this interest")


class ProfileUpdate(BaseModel):
    """What consumers of `profile-updates` receive after every change of a profile."""

    model_config = ConfigDict(frozen=True, title="ProfileUpdate")

    user_id: str
    version: int = Field(description="Increases by one per stored change")
    model_id: str = Field(description="Encoder that produced the vectors")
    updated_at: str = Field(description="RFC 3339 time of the write")
    event_time: str | None = Field(description="Newest event time folded in (RFC 3339)")
    event_count: int = Field(description="Events applied to this profile so far")
    drift: float | None = Field(description="Cosine of short- vs long-term profile")
    clusters: list[ClusterSummary] = Field(description="Top interests, heaviest first")
    short: list[float] | None = Field(default=None, description="Short-term unit vector")
    long: list[float] | None = Field(default=None, description="Long-term unit vector")


def _rfc3339(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="milliseconds")


def profile_update(
    profile: UserProfile, *, include_vectors: bool = True, top_clusters: int = 8
) -> ProfileUpdate:
    """The update record announcing `profile`."""
    state = profile.state
    short, long = state.short.profile(), state.long.profile()
    return ProfileUpdate(
        user_id=profile.user_id,
        version=profile.version,
        model_id=profile.model_id,
        updated_at=_rfc3339(profile.updated_at) or "",
        event_time=_rfc3339(state.long.t_ref),
        event_count=profile.event_count,
        drift=profile.drift(),
        clusters=[
            ClusterSummary(label=c.label, weight=c.weight, size=c.size)
            for c in profile.clusters[:top_clusters]
        ],
        short=[float(x) for x in short] if include_vectors and short is not None else None,
        long=[float(x) for x in long] if include_vectors and long is not None else None,
    )
