"""Scoring profiles: the score's weights, temperature, β and context mode fitted on a log
(`interest-stream evaluate --fit`) and kept in a small versioned JSON file, so that
`profile score|rank`, the Python client and the writers use fitted values when one is
configured (setting SCORING_PROFILE) and the shipped defaults otherwise.

The file also carries the half-lives the fit chose. Half-lives are a property of how
profiles are folded, not of how they are read (a stored profile keeps the half-lives it
was folded with, interest/profile.py), so they reach only writers that start with the file
configured and no half-life set explicitly; readers score any stored profile correctly
either way. Everything else in the file (where it was fitted, the validation curve, the
test lift) is provenance for people and is not read back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.interest.scoring import ScoreWeights

PROFILE_FORMAT = "interest-stream scoring profile v1"
_WEIGHT_FIELDS = set(ScoreWeights.__dataclass_fields__)


@dataclass(frozen=True)
class ScoringProfile:
    """Fitted score weights, the half-lives the fit folded profiles with, and provenance."""

    weights: ScoreWeights
    short_half_life_s: float | None = None
    long_half_life_s: float | None = None
    fitted: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        half_lives = {
            "short_s": self.short_half_life_s,
            "long_s": self.long_half_life_s,
        }
        return {
            "format": PROFILE_FORMAT,
            "weights": asdict(self.weights),
            "half_lives": {k: v for k, v in half_lives.items() if v is not None},
            "fitted": dict(self.fitted),
        }


def write_scoring_profile(profile: ScoringProfile, path: Path) -> Path:
    """Write the profile as JSON (write then rename: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(profile.as_dict(), indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{where}: expected a positive number, got {value!r}")
    return float(value)


def load_scoring_profile(path: Path) -> ScoringProfile:
    """Read a scoring profile file; every problem is one ConfigurationError naming the file
    and the field (a mistyped weight must stop a ranker at start-up, not skew it)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"scoring profile {path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"scoring profile {path}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"scoring profile {path}: not JSON ({exc.msg})") from exc
    if not isinstance(document, dict) or document.get("format") != PROFILE_FORMAT:
        raise ConfigurationError(f'scoring profile {path}: expected "format": "{PROFILE_FORMAT}"')
    weights = document.get("weights")
    if not isinstance(weights, dict):
        raise ConfigurationError(f"scoring profile {path}: 'weights' must be an object")
    unknown = sorted(set(weights) - _WEIGHT_FIELDS)
    if unknown:
        raise ConfigurationError(f"scoring profile {path}: unknown weights {unknown}")
    for name, value in weights.items():
        if name != "context_mode" and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise ConfigurationError(f"scoring profile {path}: weights.{name} must be a number")
    try:
        score_weights = ScoreWeights(**weights)
    except ConfigurationError as exc:
        raise ConfigurationError(f"scoring profile {path}: {exc}") from exc
    half_lives = document.get("half_lives") or {}
    if not isinstance(half_lives, dict):
        raise ConfigurationError(f"scoring profile {path}: 'half_lives' must be an object")
    short = half_lives.get("short_s")
    long = half_lives.get("long_s")
    fitted = document.get("fitted")
    return ScoringProfile(
        weights=score_weights,
        short_half_life_s=None
        if short is None
        else _number(short, f"scoring profile {path}: half_lives.short_s"),
        long_half_life_s=None
        if long is None
        else _number(long, f"scoring profile {path}: half_lives.long_s"),
        fitted=fitted if isinstance(fitted, dict) else {},
    )
