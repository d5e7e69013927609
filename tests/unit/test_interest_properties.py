"""Property tests of the pure interest model: order independence, replay safety, decay."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from interest_stream.streams.interest.horizons import (
    DAY,
    HOUR,
    HorizonState,
    InterestParams,
    fold_horizon,
    seed_ema,
)
from interest_stream.streams.interest.profile import (
    UserProfile,
    WeightedEvent,
    event_key,
    fold_events,
)

DIM = 8
# Dedup by id unbounded here (the window and count bounds have their own test below).
PARAMS = InterestParams(summary_size=16, max_clusters=4, recent_ids=10_000, recent_window_s=1e9)
T0 = 1_700_000_000.0


def _event(i: int, ts: float, weight: float, seed: int) -> WeightedEvent:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    return WeightedEvent(
        f"e{i}",
        ts,
        weight,
        f"text {seed % 5}",
        vector,
        domain=("movies", "books", None)[seed % 3],
        source="s",
        offset=None,
    )


events_strategy = st.lists(
    st.tuples(
        st.floats(0, 60 * DAY),
        st.sampled_from([1.0, 0.5, 1.5, -1.5, -0.75, 0.75]),
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=40,
).map(lambda rows: [_event(i, T0 + t, w, s) for i, (t, w, s) in enumerate(rows)])


def _fold_in_batches(events: list[WeightedEvent], cuts: list[int]) -> UserProfile:
    profile = UserProfile.new("u", "m", DIM)
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        profile = fold_events(profile, events[start:end], PARAMS, updated_at=0.0).profile
    return profile


def _assert_same(a: UserProfile, b: UserProfile) -> None:
    for horizon in ("short", "long"):
        sa, sb = getattr(a.state, horizon), getattr(b.state, horizon)
        scale = max(1.0, float(np.abs(sa.decayed_sum).max()))
        np.testing.assert_allclose(sa.decayed_sum, sb.decayed_sum, atol=1e-6 * scale)
        assert math.isclose(sa.weight, sb.weight, rel_tol=1e-9, abs_tol=1e-6 * scale)
        assert sa.t_ref == sb.t_ref
    assert a.domains.keys() == b.domains.keys()
    for name in a.domains:
        np.testing.assert_allclose(
            a.domains[name].long.decayed_sum, b.domains[name].long.decayed_sum, atol=1e-6
        )
    assert [e.key for e in a.summary] == [e.key for e in b.summary]
    assert [c.label for c in a.clusters] == [c.label for c in b.clusters]
    for ca, cb in zip(a.clusters, b.clusters, strict=True):
        np.testing.assert_allclose(ca.centroid, cb.centroid, atol=1e-6)
        assert math.isclose(ca.weight, cb.weight, rel_tol=1e-6, abs_tol=1e-9)
    assert a.event_count == b.event_count


@settings(max_examples=60, deadline=None)
@given(
    events_strategy,
    st.randoms(use_true_random=False),
    st.lists(st.integers(0, 100), max_size=4),
    st.lists(st.integers(0, 100), max_size=4),
)
def test_any_permutation_and_batching_gives_the_same_profile(events, rng, cuts_a, cuts_b):
    shuffled = list(events)
    rng.shuffle(shuffled)
    _assert_same(_fold_in_batches(events, cuts_a), _fold_in_batches(shuffled, cuts_b))


@settings(max_examples=40, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False))
def test_an_event_applied_twice_counts_once(events, rng):
    once = _fold_in_batches(events, [])
    replayed = list(events) + [rng.choice(events) for _ in range(len(events))]
    rng.shuffle(replayed)
    _assert_same(once, _fold_in_batches(replayed, [3, 7]))
    again = fold_events(once, events, PARAMS, updated_at=1.0)
    assert again.applied == 0 and again.profile is once


def test_offsets_at_or_below_the_high_water_mark_are_skipped():
    base = [
        WeightedEvent(
            f"e{i}", T0 + i, 1.0, "t", np.ones(DIM, np.float32), source="clicks:0", offset=i
        )
        for i in range(10)
    ]
    profile = fold_events(UserProfile.new("u", "m", DIM), base, PARAMS, updated_at=0).profile
    # Same offsets, new ids: a redelivery after a crash, before the ids were known.
    redelivered = [
        WeightedEvent(
            f"x{i}", T0 + i, 1.0, "t", np.ones(DIM, np.float32), source="clicks:0", offset=i
        )
        for i in range(5, 12)
    ]
    outcome = fold_events(profile, redelivered, PARAMS, updated_at=0)
    assert outcome.applied == 2 and outcome.duplicates == 5
    assert outcome.profile.applied_offsets == {"clicks:0": 11}


@given(st.floats(1 * HOUR, 365 * DAY), st.floats(0.1, 10))
def test_after_one_half_life_a_contribution_weighs_half(half_life, weight):
    decay = math.log(2) / half_life
    x = np.ones((1, DIM))
    state = fold_horizon(HorizonState.empty(DIM), x, np.array([T0]), np.array([weight]), decay)
    later = state.decayed_to(T0 + half_life, decay)
    assert math.isclose(later.weight, weight / 2, rel_tol=1e-9)
    # A newer event at exactly one half-life later: the old one now weighs half of itself.
    both = fold_horizon(state, x * 0, np.array([T0 + half_life]), np.array([0.0]), decay)
    assert math.isclose(both.weight, weight / 2, rel_tol=1e-9)


def test_a_negative_review_lowers_cosine_to_its_text():
    rng = np.random.default_rng(1)
    liked, disliked = (rng.standard_normal(DIM) for _ in range(2))
    events = [
        WeightedEvent("a", T0, 1.0, "liked", liked.astype(np.float32)),
        WeightedEvent("b", T0 + 1, 1.0, "other", disliked.astype(np.float32)),
    ]
    before = fold_events(UserProfile.new("u", "m", DIM), events, PARAMS, updated_at=0).profile
    negative = WeightedEvent("c", T0 + 2, -1.5, "hated it", disliked.astype(np.float32))
    after = fold_events(before, [negative], PARAMS, updated_at=0).profile
    unit = disliked / np.linalg.norm(disliked)
    for horizon in ("short", "long"):
        cos_before = getattr(before.state, horizon).profile() @ unit
        cos_after = getattr(after.state, horizon).profile() @ unit
        assert cos_after < cos_before


def test_numerics_stay_finite_over_ten_years_and_a_million_events():
    rng = np.random.default_rng(3)
    n = 1_000_000
    times = np.sort(T0 + rng.uniform(0, 10 * 365 * DAY, n))
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    weights = rng.choice([1.0, 0.5, -1.5, 1.5], n)
    state = HorizonState.empty(DIM)
    for decay in (PARAMS.short_decay, PARAMS.long_decay):
        for chunk in range(0, n, 100_000):
            sl = slice(chunk, chunk + 100_000)
            state = fold_horizon(state, vectors[sl], times[sl], weights[sl], decay)
        assert np.isfinite(state.decayed_sum).all() and math.isfinite(state.weight)
        profile = state.profile()
        assert profile is not None and math.isclose(float(np.linalg.norm(profile)), 1.0)
        state = HorizonState.empty(DIM)
    # Same events all at one instant: the sum grows but stays finite.
    same_time = fold_horizon(HorizonState.empty(DIM), vectors, np.full(n, T0), weights, 1e-3)
    assert np.isfinite(same_time.decayed_sum).all()


@given(st.integers(2, 30), st.floats(0.5 * HOUR, 48 * HOUR))
def test_seed_formula_is_the_evenly_spaced_special_case(count, spacing):
    rng = np.random.default_rng(count)
    vectors = rng.standard_normal((count, DIM))
    decay = PARAMS.short_decay
    keep = math.exp(-decay * spacing)
    times = T0 + spacing * np.arange(count)
    state = fold_horizon(HorizonState.empty(DIM), vectors, times, np.ones(count), decay)
    ema = seed_ema(list(vectors), keep)
    assert ema is not None
    # The EMA seeded with v_0 is k^(n-1)·v_0 + (1-k)·Σ_{i>=1} k^(n-1-i)·v_i, and the decayed
    # sum is Σ_i k^(n-1-i)·v_i: the same series up to the factor (1-k) on the later terms.
    expected = (ema - keep ** (count - 1) * vectors[0]) / (1 - keep) + keep ** (
        count - 1
    ) * vectors[0]
    np.testing.assert_allclose(state.decayed_sum, expected, rtol=1e-6, atol=1e-9)


def test_duplicate_ids_are_remembered_within_the_window_and_count():
    params = InterestParams(recent_ids=4, recent_window_s=DAY)
    vector = np.ones(DIM, np.float32)
    events = [WeightedEvent(f"e{i}", T0 + i * HOUR, 1.0, "t", vector) for i in range(30)]
    profile = fold_events(UserProfile.new("u", "m", DIM), events, params, updated_at=0).profile
    assert len(profile.recent_ids) == 4  # the last four, whatever the number of events
    again = fold_events(profile, events[-4:], params, updated_at=0)
    assert again.applied == 0 and again.duplicates == 4
    # An id older than what is remembered is applied again: only offsets catch a
    # redelivery that late (the worker's case), which is why they are kept per source.
    assert fold_events(profile, events[:1], params, updated_at=0).applied == 1


def test_ids_are_remembered_in_delivery_order_so_a_lagging_topic_keeps_its_dedup():
    params = InterestParams(recent_ids=4, recent_window_s=30 * DAY)
    vector = np.ones(DIM, np.float32)
    late = WeightedEvent("review-1", T0, 1.0, "t", vector)
    ahead = [WeightedEvent(f"click-{i}", T0 + DAY + i, 1.0, "t", vector) for i in range(6)]
    # Clicks of the next day arrive before and after the lagging review; its retry
    # follows within the last four deliveries and is still recognised.
    profile = UserProfile.new("u", "m", DIM)
    for batch in (ahead[:3], [late], ahead[3:5]):
        profile = fold_events(profile, batch, params, updated_at=0).profile
    assert fold_events(profile, [late], params, updated_at=0).duplicates == 1
    assert list(profile.recent_ids)[-1] == event_key("click-4")


PRODUCTION = InterestParams()  # the production dedup bound: the last 64 ids, 30 days


def _kafka_event(i: int, source: int, offset: int, ts: float, weight: float, seed: int):
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    return WeightedEvent(
        f"e{i}",
        ts,
        weight,
        f"text {seed % 7}",
        vector,
        domain=("movies", "books", None)[seed % 3],
        source=f"topic{source}:0",
        offset=offset,
    )


kafka_rows = st.lists(
    st.tuples(
        st.integers(0, 2),  # one of three topics (sources)
        # Many equal timestamps: the summary's ties are broken by event id.
        st.one_of(st.sampled_from([0.0, HOUR, 2 * HOUR, DAY]), st.floats(0, 30 * DAY)),
        st.sampled_from([1.0, 0.5, 1.5, -1.5, -0.75]),
        st.integers(0, 10_000),
    ),
    min_size=65,  # more than the 64 ids the production dedup keeps
    max_size=160,
)


@settings(max_examples=30, deadline=None)
@given(kafka_rows, st.randoms(use_true_random=False), st.lists(st.integers(0, 400), max_size=6))
def test_kafka_deliveries_under_the_production_dedup_bound_give_the_same_profile(rows, rng, cuts):
    """Three topics delivered interleaved in any way that keeps each topic's order, with
    redeliveries of what a topic already delivered (a restart from the last commit), in any
    batching: the profile is the one of each event once, under the production bounds."""
    per_source: list[list[WeightedEvent]] = [[], [], []]
    for i, (source, t, weight, seed) in enumerate(rows):
        per_source[source].append(
            _kafka_event(i, source, len(per_source[source]), T0 + t, weight, seed)
        )
    canonical = [e for events in per_source for e in events]
    delivery: list[WeightedEvent] = []
    cursors = [0, 0, 0]
    while any(c < len(events) for c, events in zip(cursors, per_source, strict=True)):
        source = rng.choice([s for s in range(3) if cursors[s] < len(per_source[s])])
        delivery.append(per_source[source][cursors[source]])
        cursors[source] += 1
        if rng.random() < 0.05 and cursors[source] > 1:  # redeliver from an earlier offset
            start = rng.randrange(cursors[source])
            delivery.extend(per_source[source][start : cursors[source]])
    once = fold_events(UserProfile.new("u", "m", DIM), canonical, PRODUCTION, updated_at=0.0)
    profile = UserProfile.new("u", "m", DIM)
    bounds = sorted({0, len(delivery), *(c % (len(delivery) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        profile = fold_events(profile, delivery[start:end], PRODUCTION, updated_at=0.0).profile
    _assert_same(once.profile, profile)
    assert profile.event_count == len(canonical)


def test_an_erasure_bounded_by_offsets_ignores_the_event_clocks():
    from dataclasses import replace

    erased = replace(
        UserProfile.new("u", "m", DIM),
        forgotten_at=T0,
        erased_before={"p-clicks:2": 100},
    )
    vector = np.ones(DIM, np.float32) / math.sqrt(DIM)

    def click(i: int, ts: float, offset: int, **first: object) -> WeightedEvent:
        return WeightedEvent(
            f"c{i}", ts, 1.0, "t", vector, source="p-clicks:2", offset=offset, **first
        )

    events = [
        click(1, T0 + 240, 99),  # produced before the erasure, its clock 4 minutes ahead
        click(2, T0 - 3600, 100),  # produced after it, stamped an hour before: late, old
        click(3, T0 + 60, 101),  # produced and stamped after it: new activity
        # Forwarded from another partition: its first arrival counts, not the forward's.
        click(4, T0 + 10, 7, first_source="p-clicks:2", first_offset=98),
        # A source the erasure did not see (a file): its time alone counts.
        WeightedEvent("f1", T0 - 1, 1.0, "t", vector, source="file:x", offset=1),
        WeightedEvent("f2", T0 + 1, 1.0, "t", vector, source="file:x", offset=2),
    ]
    outcome = fold_events(erased, events, PRODUCTION, updated_at=0.0)
    assert outcome.erased == 4 and outcome.applied == 2
    assert set(outcome.profile.recent_ids) == {event_key("c3"), event_key("f2")}
