"""The Cassandra backend beyond the shared contract: ANN over the SAI indexes, racing writers,
per-domain rows, bounded in-flight requests, timed-out LWTs, and the offline parts (URLs,
schema rendering, vector wire format) that need no server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from interest_stream.store.base import ProfileWrite
from interest_stream.store.cassandra import (
    CassandraOptions,
    CassandraStore,
    CassandraTarget,
    parse_url,
    replication_map,
    schema_statements,
    vector_bytes,
)
from interest_stream.streams.errors import ConfigurationError, StoreError
from interest_stream.streams.model.horizons import InterestParams
from interest_stream.streams.model.profile import UserProfile, WeightedEvent, fold_events

DIM = 384
PARAMS = InterestParams()


def _unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.standard_normal(DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _profile(
    user_id: str,
    directions: Sequence[tuple[np.ndarray, str | None]],
    *,
    seed: int = 0,
    base: UserProfile | None = None,
) -> UserProfile:
    """A profile folded from events near each (direction, domain)."""
    rng = np.random.default_rng(seed)
    events = []
    for i, (direction, domain) in enumerate(directions):
        vector = direction + 0.05 * _unit(rng)
        events.append(
            WeightedEvent(
                f"{user_id}-{seed}-{i}",
                1.7e9 + 60 * i,
                1.0,
                f"text {i}",
                (vector / np.linalg.norm(vector)).astype(np.float32),
                domain=domain,
                source="clicks:0",
                offset=seed * 100 + i,
            )
        )
    start = base or UserProfile.new(user_id, "model-a", DIM)
    return fold_events(start, events, PARAMS, updated_at=1.75e9 + seed).profile


def _url(contact: tuple[str, int], keyspace: str) -> str:
    return f"cassandra://{contact[0]}:{contact[1]}/{keyspace}"


# --- no server needed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("cassandra://h1,h2:9043/ks", CassandraTarget(("h1", "h2"), 9043, "ks")),
        ("cassandra://h1:9043,h2:9043/ks", CassandraTarget(("h1", "h2"), 9043, "ks")),
        ("cassandra://10.0.0.1", CassandraTarget(("10.0.0.1",), 9042, "interest_stream")),
        ("cassandra://[::1]:9050/Profiles", CassandraTarget(("::1",), 9050, "profiles")),
    ],
)
def test_urls_name_hosts_port_and_keyspace(url: str, expected: CassandraTarget) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "cassandra:///ks",
        "cassandra://h1:9042,h2:9043/ks",
        "cassandra://h/bad-name",
        "cassandra://h/x;DROP",
        "cassandra://h:port/ks",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_url(url)


def test_schema_renders_keyspace_replication_and_dimension() -> None:
    statements = schema_statements(
        "ks", replication={"class": "NetworkTopologyStrategy", "dc1": 3}, dim=8
    )
    assert statements[0] == (
        "CREATE KEYSPACE IF NOT EXISTS ks WITH replication ="
        " {'class': 'NetworkTopologyStrategy', 'dc1': '3'}"
    )
    assert all("IF NOT EXISTS" in s and "$" not in s and "--" not in s for s in statements)
    # profiles, profile_domains, profile_ann (short, long each), items (vector)
    assert sum(s.count("vector<float, 8>") for s in statements) == 7
    assert sum("StorageAttachedIndex" in s and "'cosine'" in s for s in statements) == 3
    with pytest.raises(ConfigurationError):
        replication_map({"class": "SimpleStrategy', 'x': '1"})


def test_vector_bytes_are_what_the_driver_would_send() -> None:
    from cassandra.cqltypes import lookup_casstype

    vector_type = lookup_casstype(
        f"org.apache.cassandra.db.marshal.VectorType(org.apache.cassandra.db.marshal.FloatType,"
        f" {DIM})"
    )
    vector = _unit(np.random.default_rng(1)).astype(np.float64)
    assert vector_bytes(vector, DIM) == vector_type.serialize(vector.astype(np.float32).tolist(), 5)
    with pytest.raises(StoreError):
        vector_bytes(vector[:10], DIM)


def test_an_unreachable_cluster_is_one_store_error() -> None:
    with pytest.raises(StoreError, match=r"cannot connect to Cassandra at 127\.0\.0\.1:1/ks"):
        CassandraStore.from_url("cassandra://127.0.0.1:1/ks")


# --- against the local node ----------------------------------------------------------------


@pytest.fixture
def url(cassandra_contact: tuple[str, int], keyspace: str) -> str:
    return _url(cassandra_contact, keyspace)


@pytest.fixture
def store(url: str) -> Iterator[CassandraStore]:
    opened = CassandraStore.from_url(url, create_schema=True)
    yield opened
    opened.close()


@pytest.mark.cassandra
def test_ann_on_the_sai_index_finds_the_nearest_user(store: CassandraStore) -> None:
    rng = np.random.default_rng(5)
    directions = [_unit(rng) for _ in range(30)]
    profiles = [_profile(f"u{i:02d}", [(d, None)] * 3, seed=i) for i, d in enumerate(directions)]
    assert len(store.apply([ProfileWrite(p, 0) for p in profiles]).won) == 30
    assert store.flush_ann()  # the indexed copies are written in the background
    query = directions[17] + 0.1 * _unit(rng)
    nearest = store.nearest_users(query, limit=3)
    assert nearest[0][0] == "u17"
    long_term = profiles[17].state.long.profile()
    assert long_term is not None
    expected = float(long_term @ query / np.linalg.norm(query))
    assert nearest[0][1] == pytest.approx(expected, abs=1e-4)
    assert nearest[0][1] > nearest[1][1] >= nearest[2][1]
    assert store.nearest_users(directions[3], horizon="short", limit=1)[0][0] == "u03"


@pytest.mark.cassandra
def test_racing_writers_exactly_one_wins_each_round(url: str) -> None:
    writers = 4
    stores = [CassandraStore.from_url(url, create_schema=(i == 0)) for i in range(writers)]
    try:
        first = _profile("race", [(_unit(np.random.default_rng(0)), None)])
        assert stores[0].apply([ProfileWrite(first, 0)]).won == ("race",)
        for round_ in range(6):
            current = stores[0].get(["race"])["race"]
            barrier = threading.Barrier(writers)
            # Same expected version, different content: each writer's event_count says who.
            candidates = [
                replace(current, version=current.version + 1, event_count=1000 * round_ + i)
                for i in range(writers)
            ]

            def attempt(opened: CassandraStore, mine: UserProfile, barrier: Any) -> Any:
                barrier.wait()  # start together, so the LWTs really race
                return opened.apply([ProfileWrite(mine, mine.version - 1)])

            with ThreadPoolExecutor(writers) as pool:
                results = list(pool.map(attempt, stores, candidates, [barrier] * writers))
            winners = [i for i, result in enumerate(results) if result.won == ("race",)]
            assert len(winners) == 1, results
            assert sum(result.lost == ("race",) for result in results) == writers - 1
            stored = stores[1].get(["race"])["race"]
            assert stored.version == current.version + 1
            assert stored.event_count == 1000 * round_ + winners[0]
    finally:
        for opened in stores:
            opened.close()


def _domain_rows(store: CassandraStore, user_id: str) -> dict[str, tuple[Any, ...]]:
    rows = store._session.execute(
        f"SELECT domain, version, long, long_weight FROM {store.keyspace}.profile_domains"
        " WHERE user_id = %s",
        (user_id,),
    )
    return {row[0]: row[1:] for row in rows}


@pytest.mark.cassandra
def test_per_domain_rows_follow_won_writes_only(store: CassandraStore) -> None:
    rng = np.random.default_rng(2)
    movies, books, music = _unit(rng), _unit(rng), _unit(rng)
    first = _profile("d", [(movies, "movies"), (books, "books"), (movies, None)])
    store.apply([ProfileWrite(first, 0)])
    rows = _domain_rows(store, "d")
    assert sorted(rows) == ["books", "movies"]
    version, long, weight = rows["movies"]
    assert version == first.version
    movies_long = first.domains["movies"].long.profile()
    assert movies_long is not None
    np.testing.assert_allclose(long, movies_long, atol=1e-6)
    assert weight == first.domains["movies"].long.weight

    # A write that loses its fence must not leave domain rows behind.
    rival = _profile("d", [(music, "music")], seed=9)
    assert store.apply([ProfileWrite(rival, 0)]).lost == ("d",)
    assert sorted(_domain_rows(store, "d")) == ["books", "movies"]

    second = _profile("d", [(music, "music")], seed=3, base=first)
    assert store.apply([ProfileWrite(second, first.version)]).won == ("d",)
    rows = _domain_rows(store, "d")
    assert sorted(rows) == ["books", "movies", "music"]
    assert {version for version, _, _ in rows.values()} == {second.version}

    assert store.delete("d") is True
    assert _domain_rows(store, "d") == {}


def _state_rows(store: CassandraStore, user_id: str) -> list[tuple[int, Any]]:
    rows = store._session.execute(
        f"SELECT version, write_id FROM {store.keyspace}.profile_states WHERE user_id = %s",
        (user_id,),
    )
    return [(row[0], row[1]) for row in rows]


@pytest.mark.cassandra
def test_only_the_current_state_row_survives(store: CassandraStore) -> None:
    rng = np.random.default_rng(12)
    first = _profile("s", [(_unit(rng), "movies")])
    assert store.apply([ProfileWrite(first, 0)]).won == ("s",)
    second = _profile("s", [(_unit(rng), "books")], seed=1, base=first)
    assert store.apply([ProfileWrite(second, first.version)]).won == ("s",)
    # A rival that read the first version loses and deletes its own state row.
    rival = _profile("s", [(_unit(rng), None)], seed=2, base=first)
    assert store.apply([ProfileWrite(rival, first.version)]).lost == ("s",)
    fence = store._session.execute(
        f"SELECT version, write_id FROM {store.keyspace}.profiles WHERE user_id = 's'"
    ).one()
    assert _state_rows(store, "s") == [(second.version, fence[1])]
    assert store.get(["s"])["s"].event_count == second.event_count
    assert store.delete("s") is True
    assert _state_rows(store, "s") == [] and store.get(["s"]) == {}


def _ann_row(store: CassandraStore, user_id: str) -> tuple[int, np.ndarray] | None:
    row = store._session.execute(
        f"SELECT version, long FROM {store.keyspace}.profile_ann WHERE user_id = %s", (user_id,)
    ).one()
    return None if row is None else (row[0], np.asarray(row[1]))


@pytest.mark.cassandra
def test_the_indexed_copy_is_rewritten_only_when_the_profile_moved(url: str) -> None:
    store = CassandraStore.from_url(
        url, options=CassandraOptions(ann_refresh_cosine=0.99), create_schema=True
    )
    try:
        rng = np.random.default_rng(14)
        topic = _unit(rng)
        first = _profile("a", [(topic, None)] * 20)
        store.apply([ProfileWrite(first, 0)])
        assert store.flush_ann() and _ann_row(store, "a")[0] == first.version
        # One more event on the same topic barely moves a 20-event profile: no rewrite.
        nudged = _profile("a", [(topic, None)], seed=1, base=first)
        store.apply([ProfileWrite(nudged, first.version)])
        assert store.flush_ann() and _ann_row(store, "a")[0] == first.version
        # A burst on a new topic moves it: the copy follows, and ANN finds the user there.
        elsewhere = _unit(rng)
        moved = _profile("a", [(elsewhere, None)] * 30, seed=2, base=nudged)
        store.apply([ProfileWrite(moved, nudged.version)])
        assert store.flush_ann()
        version, long = _ann_row(store, "a")
        moved_long = moved.state.long.profile()
        assert version == moved.version and moved_long is not None
        np.testing.assert_allclose(long, moved_long, atol=1e-6)
        assert store.nearest_users(moved_long, limit=1)[0][0] == "a"
        assert store.delete("a") and _ann_row(store, "a") is None
    finally:
        store.close()


@pytest.mark.cassandra
def test_a_fence_whose_state_is_gone_is_a_clear_error(store: CassandraStore) -> None:
    profile = _profile("g", [(_unit(np.random.default_rng(13)), None)])
    store.apply([ProfileWrite(profile, 0)])
    store._session.execute(f"DELETE FROM {store.keyspace}.profile_states WHERE user_id = 'g'")
    with pytest.raises(StoreError, match="state named by the profile of 'g' is missing"):
        store.get(["g"])


@pytest.mark.cassandra
def test_requests_in_flight_stay_bounded(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bounded = CassandraStore.from_url(
        url, options=CassandraOptions(max_in_flight=3), create_schema=True
    )
    lock = threading.Lock()
    counts = {"now": 0, "peak": 0, "total": 0}
    execute_async = bounded._session.execute_async

    def counting(*args: Any, **kwargs: Any) -> Any:
        with lock:
            counts["now"] += 1
            counts["total"] += 1
            counts["peak"] = max(counts["peak"], counts["now"])
        future = execute_async(*args, **kwargs)

        def finished(_: object) -> None:
            with lock:
                counts["now"] -= 1

        # Registered before the executor's own callback, which starts the next request.
        future.add_callbacks(finished, finished)
        return future

    monkeypatch.setattr(bounded._session, "execute_async", counting)
    try:
        rng = np.random.default_rng(3)
        profiles = [_profile(f"b{i}", [(_unit(rng), "movies")], seed=i) for i in range(40)]
        assert len(bounded.apply([ProfileWrite(p, 0) for p in profiles]).won) == 40
        assert len(bounded.get([p.user_id for p in profiles])) == 40
    finally:
        bounded.close()
    # 40 state writes, 40 LWTs, 40 old-state deletes, 40 domain rows, 40 ANN copies;
    # 40 + 40 reads
    assert counts["total"] == 280
    assert 2 <= counts["peak"] <= 3


def _failing_once(
    store: CassandraStore, monkeypatch: pytest.MonkeyPatch, *, execute: int
) -> list[str]:
    """Make the next LWT round run its statements `execute` times, then report a
    WriteTimeout for each: what a client sees when a Paxos round outlives its timeout."""
    from cassandra import WriteTimeout, WriteType

    real: Callable[[Sequence[Any]], list[Any]] = store._execute_fences
    calls: list[str] = []

    def flaky(statements: Sequence[Any]) -> list[Any]:
        if calls:
            return real(statements)
        calls.append("timed out")
        for _ in range(execute):
            real(statements)
        return [WriteTimeout("simulated", write_type=WriteType.CAS) for _ in statements]

    monkeypatch.setattr(store, "_execute_fences", flaky)
    return calls


@pytest.mark.cassandra
def test_a_timed_out_write_that_committed_is_reported_won(
    store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = _profile("t", [(_unit(np.random.default_rng(4)), "books")])
    calls = _failing_once(store, monkeypatch, execute=1)
    assert store.apply([ProfileWrite(profile, 0)]).won == ("t",)
    assert calls == ["timed out"]
    assert store.get(["t"])["t"].version == profile.version
    assert sorted(_domain_rows(store, "t")) == ["books"]


@pytest.mark.cassandra
def test_a_timed_out_write_that_never_ran_is_reported_lost(
    store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = _profile("t", [(_unit(np.random.default_rng(4)), "books")])
    _failing_once(store, monkeypatch, execute=0)
    assert store.apply([ProfileWrite(profile, 0)]).lost == ("t",)
    assert store.get(["t"]) == {} and _domain_rows(store, "t") == {}
    assert store.apply([ProfileWrite(profile, 0)]).won == ("t",)


@pytest.mark.cassandra
def test_a_retried_update_that_had_committed_is_reported_won(
    store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(6)
    first = _profile("r", [(_unit(rng), None)])
    store.apply([ProfileWrite(first, 0)])
    second = _profile("r", [(_unit(rng), None)], seed=1, base=first)
    real = store._execute_fences

    def retried(statements: Sequence[Any]) -> list[Any]:
        # The first round commits; its retry finds version already moved to ours.
        real(statements)
        monkeypatch.setattr(store, "_execute_fences", real)
        return real(statements)

    monkeypatch.setattr(store, "_execute_fences", retried)
    assert store.apply([ProfileWrite(second, first.version)]).won == ("r",)
    # A rival that read the same version and lost sees the same stored version: lost.
    rival = _profile("r", [(_unit(rng), None)], seed=2, base=first)
    assert store.apply([ProfileWrite(rival, first.version)]).lost == ("r",)
    assert store.get(["r"])["r"].event_count == second.event_count


@pytest.mark.cassandra
def test_requests_the_driver_refused_to_send_are_sent_again(
    store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionBusy

    real = store._requests._round
    rounds: list[int] = []

    def busy_first(statements: Sequence[Any]) -> list[Any]:
        rounds.append(len(statements))
        if len(rounds) == 2:  # the LWT round; the driver's word for a full socket buffer
            busy = {"127.0.0.1:9042": ConnectionBusy("Connection 127.0.0.1:9042 is overloaded")}
            return [NoHostAvailable("Unable to complete the operation", busy) for _ in statements]
        return real(statements)

    monkeypatch.setattr(store._requests, "_round", busy_first)
    profile = _profile("o", [(_unit(np.random.default_rng(7)), None)])
    assert store.apply([ProfileWrite(profile, 0)]).won == ("o",)
    assert store.flush_ann()
    # state write, LWT refused, LWT resent once, old-state delete, then the ANN copy from
    # the background writer: no SERIAL read-back
    assert rounds == [1, 1, 1, 1, 1]


@pytest.mark.cassandra
def test_profiles_of_another_dimension_are_refused(store: CassandraStore) -> None:
    small = replace(UserProfile.new("s", "model-b", 8), version=1)
    with pytest.raises(StoreError, match="8 dimensions"):
        store.apply([ProfileWrite(small, 0)])
    assert store.apply([]).won == () and store.get([]) == {}


@pytest.mark.cassandra
def test_a_keyspace_without_tables_points_to_init(url: str) -> None:
    with pytest.raises(StoreError, match="interest-stream init"):
        CassandraStore.from_url(url)


@pytest.mark.cassandra
def test_a_keyspace_of_the_older_layout_is_refused_with_a_way_out(
    url: str, cassandra_session: Any, keyspace: str
) -> None:
    CassandraStore.from_url(url, create_schema=True).close()
    # The earlier layout kept the whole profile in profiles.state.
    cassandra_session.execute(f"ALTER TABLE {keyspace}.profiles ADD state blob", timeout=60)
    with pytest.raises(StoreError, match=r"older profile layout \(profiles\.state\)") as error:
        CassandraStore.from_url(url, create_schema=True)
    assert f"DROP KEYSPACE {keyspace}" in str(error.value)
