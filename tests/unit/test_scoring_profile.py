"""Scoring profiles (`evaluate --fit` writes them): the file's contract, the settings that
point at it, the client and `profile score|rank` using it, the defaults untouched without
it; and the score's arithmetic shared by the product and the fitter (`combine_parts`),
including the "mass" context mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.streams.cli import main
from interest_stream.streams.client import ProfileClient
from interest_stream.streams.core.scoring_profile import (
    PROFILE_FORMAT,
    ScoringProfile,
    load_scoring_profile,
    write_scoring_profile,
)
from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.interest.horizons import DAY, HOUR
from interest_stream.streams.interest.scoring import (
    ProfileVectors,
    ScoreWeights,
    combine_parts,
    score_candidates,
)
from interest_stream.streams.settings import Settings

FITTED = ScoreWeights(
    long=0.1, short=0.05, context=0.85, temperature=0.05, dislike=0.3, beta=6.0, context_mode="mass"
)


def _profile_file(tmp_path: Path, weights: ScoreWeights = FITTED) -> Path:
    profile = ScoringProfile(weights, 3 * HOUR, 90 * DAY, {"source": "test"})
    return write_scoring_profile(profile, tmp_path / "scoring-profile.json")


def test_a_profile_file_round_trips_and_is_versioned(tmp_path: Path):
    path = _profile_file(tmp_path)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == PROFILE_FORMAT
    assert document["weights"]["context_mode"] == "mass"
    loaded = load_scoring_profile(path)
    assert loaded.weights == FITTED
    assert (loaded.short_half_life_s, loaded.long_half_life_s) == (3 * HOUR, 90 * DAY)
    assert loaded.fitted == {"source": "test"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "something else"}, 'expected "format"'),
        ({"weights": {"long": "0.3"}}, "weights.long must be a number"),
        ({"weights": {"loong": 0.3}}, "unknown weights ['loong']"),
        ({"weights": {"temperature": 0}}, "temperature must be > 0"),
        ({"weights": {"context_mode": "max"}}, "context mode must be one of"),
        ({"half_lives": {"short_s": -1}}, "half_lives.short_s"),
    ],
)
def test_a_bad_profile_file_is_one_clear_error(tmp_path: Path, change: dict, message: str):
    document = {"format": PROFILE_FORMAT, "weights": {}, **change}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=str(path)) as caught:
        load_scoring_profile(path)
    assert message in str(caught.value)


def test_settings_use_the_profile_only_when_configured(tmp_path: Path):
    plain = Settings()
    assert plain.score_weights() == ScoreWeights()
    assert plain.interest_params().short_half_life_s == 6 * HOUR
    fitted = Settings(scoring_profile=_profile_file(tmp_path))
    assert fitted.score_weights() == FITTED
    params = fitted.interest_params()
    assert (params.short_half_life_s, params.long_half_life_s) == (3 * HOUR, 90 * DAY)
    # A half-life set explicitly wins over the profile's.
    explicit = Settings(scoring_profile=_profile_file(tmp_path), short_half_life_s=HOUR)
    assert explicit.interest_params().short_half_life_s == HOUR
    assert explicit.interest_params().long_half_life_s == 90 * DAY


def test_the_environment_names_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("INTEREST_STREAM_SCORING_PROFILE", str(_profile_file(tmp_path)))
    assert Settings().score_weights() == FITTED
    monkeypatch.setenv("INTEREST_STREAM_SCORING_PROFILE", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigurationError, match="no such file"):
        Settings().score_weights()


SPACE = [
    "Astronauts stranded on Mars fight to survive",
    "A starship crew racing through a wormhole",
    "The mission commander landing on a frozen moon",
]


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("scoring")
    events = [
        {
            "event_id": f"fan-{i}",
            "user_id": "fan",
            "ts": 1_790_000_000_000 + i * 60_000,
            "type": "click",
            "text": text,
        }
        for i, text in enumerate(SPACE)
    ]
    path = tmp / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    url = f"sqlite:///{tmp}/profiles.db"
    result = CliRunner().invoke(
        main, ["run", str(path), "--store", url, "--encoder", "hashing"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return url


def test_the_client_scores_with_the_configured_profile(store_url: str, tmp_path: Path):
    settings = Settings(scoring_profile=_profile_file(tmp_path))
    texts = ["A starship crew racing through a wormhole", "Slow-cooked beef stew"]
    with ProfileClient.from_url(store_url, settings, encoder=HashingEncoder()) as client:
        assert client.weights == FITTED
        fan = client.get("fan")
        fitted = client.score("fan", texts)
        expected = score_candidates(fan, HashingEncoder().encode(texts), FITTED).total
        np.testing.assert_allclose(fitted, expected)
        defaults = score_candidates(fan, HashingEncoder().encode(texts), ScoreWeights()).total
        assert not np.allclose(fitted, defaults)
    # Explicit weights win; no profile configured: the shipped defaults, as before.
    explicit = ProfileClient.from_url(
        store_url, settings, encoder=HashingEncoder(), weights=ScoreWeights(long=1.0)
    )
    with explicit as client:
        assert client.weights == ScoreWeights(long=1.0)
    with ProfileClient.from_url(store_url, Settings(), encoder=HashingEncoder()) as client:
        assert client.weights == ScoreWeights()


def test_profile_score_uses_the_profile_and_flags_override_it(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def weights(*extra: str) -> dict:
        args = ["profile", "score", "fan", "--store", store_url, "--encoder", "hashing"]
        result = CliRunner().invoke(main, [*args, "--text", SPACE[0], "--json", *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["weights"]

    assert weights()["context"] == ScoreWeights().context
    monkeypatch.setenv("INTEREST_STREAM_SCORING_PROFILE", str(_profile_file(tmp_path)))
    fitted = weights()
    assert fitted["context"] == 0.85 and fitted["context_mode"] == "mass"
    assert fitted["beta"] == 6.0
    overridden = weights("--context-weight", "0.5")
    assert overridden["context"] == 0.5 and overridden["long"] == 0.1


# --- the arithmetic the product and the fitter share ---------------------------------------

DIM = 6


def _random_profile(rng: np.random.Generator, clusters: int) -> ProfileVectors:
    def unit(n: int) -> np.ndarray:
        rows = rng.normal(size=(n, DIM)).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    return ProfileVectors(
        user_id="u",
        model_id="m",
        version=1,
        updated_at=0.0,
        event_count=3,
        long=unit(1)[0],
        short=unit(1)[0] if clusters % 2 else None,
        centroids=unit(clusters),
        cluster_weights=rng.uniform(0.1, 3.0, clusters).astype(np.float32),
        labels=tuple(f"c{i}" for i in range(clusters)),
        short_share=float(rng.uniform()),
        disliked=unit(1) if clusters > 1 else None,
    )


@pytest.mark.parametrize("mode", ["attention", "mass"])
def test_combining_many_users_at_once_equals_scoring_each(mode: str):
    rng = np.random.default_rng(3)
    profiles = [_random_profile(rng, k) for k in (0, 1, 2, 3)]
    candidates = rng.normal(size=(7, DIM))
    popularity = rng.integers(0, 50, size=(len(profiles), 7))
    weights = ScoreWeights(0.2, 0.3, 0.5, temperature=0.2, dislike=0.4, context_mode=mode)
    each = [
        score_candidates(p, candidates, weights, popularity=popularity[i])
        for i, p in enumerate(profiles)
    ]
    stacked = combine_parts(
        np.stack([s.long for s in each]),
        np.stack([s.short for s in each]),
        np.stack([s.context for s in each]),
        np.stack([s.dislike for s in each]),
        np.array([[p.short_share] for p in profiles]),
        weights,
        popularity=popularity,
    )
    np.testing.assert_allclose(stacked, np.stack([s.total for s in each]), rtol=1e-12)


def test_mass_mode_judges_candidates_against_the_main_interest():
    # Two liked clusters, one with ten times the mass; candidates equally near one each.
    heavy, light = np.eye(DIM, dtype=np.float32)[0], np.eye(DIM, dtype=np.float32)[1]
    profile = ProfileVectors(
        user_id="u",
        model_id="m",
        version=1,
        updated_at=0.0,
        event_count=11,
        long=None,
        short=None,
        centroids=np.stack([heavy, light]),
        cluster_weights=np.array([10.0, 1.0], dtype=np.float32),
        labels=("heavy", "light"),
    )
    near_heavy = 0.8 * heavy + 0.6 * np.eye(DIM)[2]
    near_light = 0.8 * light + 0.6 * np.eye(DIM)[2]
    candidates = np.stack([near_heavy, near_light])
    attention = score_candidates(profile, candidates, ScoreWeights(temperature=0.5)).total
    assert attention[0] == pytest.approx(attention[1])  # similarity alone: a tie
    mass = score_candidates(
        profile, candidates, ScoreWeights(temperature=0.5, context_mode="mass")
    ).total
    assert mass[0] > mass[1]
