"""Which horizons the vector index covers (`ANN_HORIZONS`): `init` creates only their
indexes, the store answers nearest-user queries on those and refuses the others in one
line, and the settings check the value."""

from __future__ import annotations

import numpy as np
import pytest

from interest_stream.store.base import ProfileWrite, partition_fence
from interest_stream.store.cassandra import (
    CassandraOptions,
    CassandraStore,
    parse_url,
    schema_statements,
)
from interest_stream.streams.errors import ConfigurationError, StoreRefusedError
from interest_stream.streams.interest.horizons import InterestParams
from interest_stream.streams.interest.profile import UserProfile, WeightedEvent, fold_events

DIM = 384


def _indexes(statements: list[str]) -> list[str]:
    return [s.split()[6] for s in statements if s.startswith("CREATE CUSTOM INDEX")]


def test_the_schema_indexes_only_the_listed_horizons_of_the_copies() -> None:
    assert _indexes(schema_statements("ks")) == [
        "profile_ann_long",
        "profile_ann_short",
        "items_ann",
    ]
    assert _indexes(schema_statements("ks", ann_horizons=("long",))) == [
        "profile_ann_long",
        "items_ann",
    ]
    assert _indexes(schema_statements("ks", ann_horizons=("short",))) == [
        "profile_ann_short",
        "items_ann",
    ]
    with pytest.raises(ConfigurationError, match="ann_horizons"):
        schema_statements("ks", ann_horizons=())


def test_the_ann_horizons_setting_is_checked_when_read() -> None:
    from interest_stream.streams.settings import load_settings

    assert load_settings().cassandra_options().ann_horizons == ("long", "short")
    assert load_settings(ann_horizons="long").cassandra_options().ann_horizons == ("long",)
    with pytest.raises(ConfigurationError, match="ann_horizons"):
        load_settings(ann_horizons="medium")


@pytest.fixture
def url(cassandra_contact: tuple[str, int], keyspace: str) -> str:
    host, port = cassandra_contact
    return f"cassandra://{host}:{port}/{keyspace}"


@pytest.mark.cassandra
def test_a_keyspace_indexed_on_the_long_horizon_answers_it_and_refuses_the_short_one(
    url: str,
) -> None:
    store = CassandraStore.from_url(
        url, options=CassandraOptions(ann_horizons=("long",)), create_schema=True
    )
    try:
        rows = store._session.execute(
            "SELECT index_name FROM system_schema.indexes WHERE keyspace_name = %s",
            (parse_url(url).keyspace,),
        )
        assert {name for (name,) in rows} == {"profile_ann_long", "items_ann"}
        vector = np.random.default_rng(3).standard_normal(DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        event = WeightedEvent("e1", 1.7e9, 1.0, "text", vector)
        profile = fold_events(
            UserProfile.new("u1", "m", DIM), [event], InterestParams(), updated_at=1.7e9
        ).profile
        store.claim({partition_fence(0)})
        store.apply([ProfileWrite(profile, 0, partition_fence(0))])
        assert store.flush_ann(30)
        assert [user for user, _ in store.nearest_users(vector, limit=1)] == ["u1"]
        with pytest.raises(
            StoreRefusedError, match=r"no vector index on profile_ann.short \(it indexes: long\)"
        ):
            store.nearest_users(vector, horizon="short")
    finally:
        store.close()


@pytest.mark.cassandra
def test_init_with_fewer_horizons_keeps_an_existing_index_and_says_how_to_drop_it(
    cassandra_contact: tuple[str, int], keyspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from interest_stream.streams.cli import main

    host, port = cassandra_contact
    args = ["init", "--no-kafka", "--store", f"cassandra://{host}:{port}/{keyspace}"]
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert f"cassandra {keyspace}.profile_ann_short: created" in first.output
    monkeypatch.setenv("INTEREST_STREAM_ANN_HORIZONS", "long")
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert (
        f"cassandra {keyspace}.profile_ann_short: exists, kept though ANN_HORIZONS leaves it"
        f" out (DROP INDEX {keyspace}.profile_ann_short ends its inserts)"
    ) in again.output
    assert f"cassandra {keyspace}.profile_ann_long: exists" in again.output


@pytest.mark.cassandra
@pytest.mark.parametrize("dropped", [(), ("long",), ("long", "short")])
def test_a_store_follows_the_indexes_its_keyspace_has_not_its_settings(
    url: str, dropped: tuple[str, ...]
) -> None:
    """Opened with ANN_HORIZONS=long on a keyspace indexed otherwise: both indexed, short
    only, or none (between a DROP INDEX and the `init` that rebuilds it: both are written)."""
    keyspace = parse_url(url).keyspace
    CassandraStore.from_url(url, create_schema=True).close()
    setup = CassandraStore.from_url(url)
    for horizon in dropped:
        setup._session.execute(f"DROP INDEX {keyspace}.profile_ann_{horizon}", timeout=60)
    setup.close()
    store = CassandraStore.from_url(url, options=CassandraOptions(ann_horizons=("long",)))
    try:
        indexed = tuple(h for h in ("short", "long") if h not in dropped)
        assert store.ann_horizons == indexed
        vector = np.random.default_rng(4).standard_normal(DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        event = WeightedEvent("e1", 1.7e9, 1.0, "text", vector)
        profile = fold_events(
            UserProfile.new("u1", "m", DIM), [event], InterestParams(), updated_at=1.7e9
        ).profile
        store.claim({partition_fence(0)})
        store.apply([ProfileWrite(profile, 0, partition_fence(0))])
        assert store.flush_ann(30)
        (row,) = store._session.execute(f"SELECT short, long FROM {keyspace}.profile_ann")
        written = indexed or ("short", "long")
        for horizon in ("short", "long"):
            assert (row[("short", "long").index(horizon)] is not None) == (horizon in written)
            if horizon in indexed:
                hits = store.nearest_users(vector, horizon=horizon, limit=1)
                assert hits[0][0] == "u1" and hits[0][1] == pytest.approx(1.0, abs=1e-4)
            else:
                with pytest.raises(StoreRefusedError, match=f"profile_ann.{horizon}"):
                    store.nearest_users(vector, horizon=horizon)
    finally:
        store.close()
