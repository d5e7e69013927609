"""Property tests of what is stored and how it is read: reads decay to the time of the read
and agree with the stored state; the short-term share fades to nothing; the codec gives back
what was folded and stays bounded in bytes whatever the number of events."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interest_stream.streams.interest.codec import (
    ProfileFormatError,
    decode_profile,
    encode_profile,
)
from interest_stream.streams.interest.horizons import DAY, HOUR, InterestParams
from interest_stream.streams.interest.profile import UserProfile, WeightedEvent, fold_events
from interest_stream.streams.interest.scoring import ProfileVectors, ScoreWeights, score_candidates

DIM = 16
PARAMS = InterestParams(summary_size=12, max_domains=4)
T0 = 1_700_000_000.0

events_strategy = st.lists(
    st.tuples(
        st.floats(0, 30 * DAY),
        st.sampled_from([1.0, 0.5, 1.5, -1.5, 0.75]),
        st.integers(0, 10_000),
        st.sampled_from(["movies", "books", "music", "food", "games", "sports", None]),
    ),
    min_size=1,
    max_size=60,
)


def _events(rows: list[tuple[float, float, int, str | None]]) -> list[WeightedEvent]:
    events = []
    for i, (t, weight, seed, domain) in enumerate(rows):
        vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
        events.append(
            WeightedEvent(
                f"e{i}",
                T0 + t,
                weight,
                f"text number {seed % 7}",
                vector / np.linalg.norm(vector),
                domain=domain,
                source="clicks:0",
                offset=i,
            )
        )
    return events


def _fold(rows: list[tuple[float, float, int, str | None]]) -> UserProfile:
    start = UserProfile.new("u", "m", DIM, PARAMS)
    return fold_events(start, _events(rows), PARAMS, updated_at=T0 + 31 * DAY).profile


@settings(max_examples=40, deadline=None)
@given(events_strategy, st.floats(0, 60 * DAY))
def test_a_read_agrees_with_the_stored_state_decayed_to_its_time(rows, later):
    profile = _fold(rows)
    state = profile.state
    t_ref = state.long.t_ref
    assert t_ref is not None
    at_ref = ProfileVectors.from_profile(profile, at=t_ref)
    assert at_ref.long_weight == state.long.weight
    read = ProfileVectors.from_profile(profile, at=t_ref + later)
    assert math.isclose(
        read.long_weight, state.long.weight * math.exp(-PARAMS.long_decay * later), rel_tol=1e-9
    )
    short_ref = state.short.t_ref or t_ref
    expected_short = state.short.weight * math.exp(
        -PARAMS.short_decay * max(0.0, t_ref + later - short_ref)
    )
    assert math.isclose(read.short_weight, expected_short, rel_tol=1e-9, abs_tol=1e-300)
    # Decay scales a horizon, it never turns it: the directions are the stored ones.
    for got, want in ((read.long, state.long.profile()), (read.short, state.short.profile())):
        assert (got is None) == (want is None)
        if got is not None and want is not None:
            np.testing.assert_allclose(got, want, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(events_strategy)
def test_the_short_term_share_fades_to_nothing_as_the_last_event_recedes(rows):
    profile = _fold(rows)
    t_ref = profile.state.long.t_ref
    assert t_ref is not None
    shares = [
        ProfileVectors.from_profile(profile, at=t_ref + k * PARAMS.short_half_life_s).short_share
        for k in range(0, 40, 4)
    ]
    assert all(0.0 <= s <= 1.0 for s in shares)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(shares))
    assert shares[-1] < 1e-3  # 36 short half-lives later


@settings(max_examples=30, deadline=None)
@given(events_strategy)
def test_long_after_the_last_event_a_score_is_the_score_without_the_short_term(rows):
    profile = _fold(rows)
    t_ref = profile.state.long.t_ref
    assert t_ref is not None
    candidates = np.random.default_rng(1).standard_normal((5, DIM))
    late = ProfileVectors.from_profile(profile, at=t_ref + 60 * PARAMS.short_half_life_s)
    with_short = score_candidates(late, candidates, ScoreWeights())
    without = score_candidates(late, candidates, ScoreWeights(short=0.0))
    np.testing.assert_allclose(with_short.total, without.total, atol=1e-6)


def _float32_unit(horizon):
    unit = horizon.profile()
    return None if unit is None else unit.astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(events_strategy, st.booleans())
def test_the_codec_gives_back_what_was_folded(rows, apart):
    profile = _fold(rows)
    if apart:  # as Cassandra stores it: unit vectors in float32 columns, norms in the blob
        blob = encode_profile(profile, horizons_apart=True)
        units = (_float32_unit(profile.state.short), _float32_unit(profile.state.long))
        back = decode_profile(blob, horizons=units)
        assert len(blob) <= len(encode_profile(profile)) - 2 * DIM * 4 + 64  # norms in the header
        with pytest.raises(ProfileFormatError):
            decode_profile(blob)
    else:
        back = decode_profile(encode_profile(profile))
    assert (back.user_id, back.version, back.event_count) == (
        profile.user_id,
        profile.version,
        profile.event_count,
    )
    for horizon in ("short", "long"):
        a, b = getattr(profile.state, horizon), getattr(back.state, horizon)
        np.testing.assert_allclose(b.decayed_sum, a.decayed_sum, rtol=1e-6, atol=1e-7)
        assert (a.weight, a.t_ref) == (b.weight, b.t_ref)
    assert sorted(back.domains) == sorted(profile.domains)
    for name in profile.domains:  # float16 directions: about 1e-3 relative per component
        np.testing.assert_allclose(
            back.domains[name].long.decayed_sum,
            profile.domains[name].long.decayed_sum,
            rtol=2e-3,
            atol=2e-3 * float(np.abs(profile.domains[name].long.decayed_sum).max() + 1e-9),
        )
    assert [(e.key, e.ts, e.weight, e.label) for e in back.summary] == [
        (e.key, e.ts, e.weight, e.label) for e in profile.summary
    ]
    assert [(c.label, c.members, c.weight) for c in back.clusters] == [
        (c.label, c.members, c.weight) for c in profile.clusters
    ]
    assert back.recent_ids == profile.recent_ids and back.half_lives == profile.half_lives


def test_stored_bytes_stop_growing_past_the_bounds():
    rng = np.random.default_rng(5)
    params = InterestParams()
    dim = 384
    profile = UserProfile.new("u", "m", dim, params)
    sizes = []
    for batch in range(40):
        events = []
        for i in range(100):
            vector = rng.standard_normal(dim).astype(np.float32)
            n = batch * 100 + i
            events.append(
                WeightedEvent(
                    f"e{n}",
                    T0 + n * HOUR,
                    1.0,
                    f"Item {n} with a long enough title to be cut into a label at some point",
                    vector / np.linalg.norm(vector),
                    domain=f"domain-{n % 40}",
                    source=f"clicks:{n % 3}",
                    offset=n,
                )
            )
        profile = fold_events(profile, events, params, updated_at=T0).profile
        sizes.append(len(encode_profile(profile)))
    # 4,000 events over 40 domains: at most max_domains kept, the summary and the event ids
    # at their bounds; the size no longer depends on the number of events.
    assert len(profile.domains) == params.max_domains
    assert len(profile.summary) == params.summary_size
    assert len(profile.recent_ids) <= params.recent_ids
    assert max(sizes[10:]) - min(sizes[10:]) < 0.02 * max(sizes)
    assert max(sizes) < 40 * 1024
