"""The users' side without servers: scoring math, publish routing, watch formatting, the
client API and `profile similar|score|rank` over SQLite, and one-line CLI errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.schemas.events import ValidationRules
from interest_stream.schemas.records import RawRecord
from interest_stream.schemas.updates import ClusterSummary, ProfileUpdate
from interest_stream.streams.cli import main
from interest_stream.streams.client import ProfileClient
from interest_stream.streams.errors import ConfigurationError, ModelMismatchError, UnknownUserError
from interest_stream.streams.interest.clusters import Cluster, contextual_profile
from interest_stream.streams.interest.scoring import (
    ProfileVectors,
    ScoreWeights,
    contextual_vector,
    nearest,
    ranking,
    score_candidates,
)
from interest_stream.streams.kafka.publish import publish_events
from interest_stream.streams.kafka.watch import follow_updates, format_update, update_json

NOW = 1_790_000_000.0  # 2026-09-21
DIM = 8


def _unit(i: int, dim: int = DIM) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[i] = 1.0
    return v


def _profile(long=None, short=None, centroids=()) -> ProfileVectors:
    return ProfileVectors(
        user_id="u",
        model_id="m",
        version=1,
        updated_at=NOW,
        event_count=3,
        long=long,
        short=short,
        centroids=np.array(centroids, dtype=np.float32).reshape(len(centroids), DIM),
        cluster_weights=np.ones(len(centroids), dtype=np.float32),
        labels=tuple(f"c{i}" for i in range(len(centroids))),
    )


# --- scoring ---------------------------------------------------------------------------------


def test_score_is_the_weighted_mean_of_the_three_cosines():
    profile = _profile(long=_unit(0), short=_unit(1), centroids=[_unit(0), _unit(2)])
    scores = score_candidates(profile, np.stack([_unit(0), _unit(1), _unit(3)]))
    np.testing.assert_allclose(scores.long, [1, 0, 0])
    np.testing.assert_allclose(scores.short, [0, 1, 0])
    # Candidate e0 attends almost only to cluster e0 (τ = 0.1): its contextual cosine is ~1.
    assert scores.context[0] == pytest.approx(1.0, abs=1e-3)
    assert scores.total[0] == pytest.approx(0.3 + 0.2 * scores.context[0])
    assert scores.total[1] == pytest.approx(0.5 + 0.2 * scores.context[1])
    assert ranking(scores)[-1] == 2  # e3 matches nothing in the profile


def test_parts_a_profile_lacks_drop_out_and_the_rest_is_renormalized():
    profile = _profile(long=_unit(0), short=None, centroids=[_unit(0)])
    scores = score_candidates(profile, [_unit(0)], ScoreWeights(long=0.4, short=0.3, context=0.3))
    assert np.isnan(scores.short[0])
    assert scores.total[0] == pytest.approx(1.0)
    empty = score_candidates(_profile(), [_unit(0)])
    assert np.isnan(empty.total[0]) and ranking(empty) == [0]


def test_contextual_vector_is_the_normalized_attention_mix():
    centroids = [_unit(0), _unit(1)]
    profile = _profile(long=_unit(2), centroids=centroids)
    context = np.array([0.9, 0.3, 0, 0, 0, 0, 0, 0])
    got = contextual_vector(profile, context, temperature=0.5)
    clusters = [Cluster(c.astype(np.float64), 1.0, "x", 1) for c in centroids]
    expected = contextual_profile(clusters, context / np.linalg.norm(context), 0.5)
    np.testing.assert_allclose(got, expected / np.linalg.norm(expected), atol=1e-6)
    assert got[0] > got[1] > 0
    # No clusters yet: the long-term profile stands in.
    np.testing.assert_array_equal(contextual_vector(_profile(long=_unit(2)), context), _unit(2))


def test_bad_weights_are_configuration_errors():
    with pytest.raises(ConfigurationError):
        ScoreWeights(long=-1)
    with pytest.raises(ConfigurationError):
        ScoreWeights(long=0, short=0, context=0)
    with pytest.raises(ConfigurationError):
        ScoreWeights(temperature=0)


def test_nearest_is_exact_top_k_with_ties_by_id_across_chunks():
    vectors = [("b", _unit(0)), ("a", _unit(0)), ("c", _unit(1)), ("me", _unit(0)), ("d", None)]
    vectors.append(("e", np.array([1, 1, 0, 0, 0, 0, 0, 0])))
    got = nearest(_unit(0), vectors, limit=3, exclude="me", chunk=2)
    assert [key for key, _ in got] == ["a", "b", "e"]
    assert got[2][1] == pytest.approx(2**-0.5)
    assert nearest(_unit(0), vectors, limit=0) == []


# --- publish ---------------------------------------------------------------------------------


def _line(**fields) -> bytes:
    event = {
        "event_id": "e",
        "user_id": "u1",
        "ts": "2026-09-20T10:00:00Z",
        "type": "click",
        "text": "Astronauts stranded on Mars",
    }
    return json.dumps({**event, **fields}).encode()


def test_publish_routes_by_type_keys_by_user_and_never_sends_rejects():
    lines = [
        _line(event_id="1"),
        _line(event_id="2", type="query", user_id="u2", text="space movies"),
        b"{not json",
        _line(event_id="3", type="review", rating=5),
        _line(event_id="4", text=""),
    ]
    records = [RawRecord.at(v, "file:/data/events.jsonl", i) for i, v in enumerate(lines, 1)]
    sent: list[tuple[str, bytes, bytes]] = []
    flushed: list[bool] = []
    progress: list[int] = []
    summary = publish_events(
        records,
        lambda topic, key, value: sent.append((topic, key, value)),
        rules=ValidationRules(),
        topic_prefix="t-",
        flush=lambda: flushed.append(True),
        on_progress=progress.append,
        wall_clock=lambda: NOW,
    )
    assert [(t, k) for t, k, _ in sent] == [
        ("t-clicks", b"u1"),
        ("t-queries", b"u2"),
        ("t-reviews", b"u1"),
    ]
    assert [v for _, _, v in sent] == [lines[0], lines[1], lines[3]]  # the original bytes
    assert summary.rejected == 2 and flushed == [True] and sum(progress) == 5
    assert summary.first_rejects[0].startswith("/data/events.jsonl:3: not JSON")
    assert summary.first_rejects[1].startswith("/data/events.jsonl:5: field 'text'")
    assert summary.report()["sent_per_topic"] == {"t-clicks": 1, "t-queries": 1, "t-reviews": 1}


def test_publish_items_sends_catalogue_lines_keyed_by_item_id():
    lines = [
        b'{"item_id": "film-7", "text": "A lone astronaut drifts", "domain": "movies"}',
        b'{"item_id": "", "text": "no id"}',
        b'{"item_id": "book-1", "text": "A cookbook"}',
        _line(event_id="1"),  # an event is not an item: rejected, not sent
    ]
    records = [RawRecord.at(v, "file:items.jsonl", i) for i, v in enumerate(lines, 1)]
    sent: list[tuple[str, bytes, bytes]] = []
    summary = publish_events(
        records,
        lambda topic, key, value: sent.append((topic, key, value)),
        rules=ValidationRules(),
        items_topic="t-items",
    )
    assert sent == [("t-items", b"film-7", lines[0]), ("t-items", b"book-1", lines[2])]
    assert summary.rejected == 2
    assert summary.first_rejects[0].startswith("items.jsonl:2: field 'item_id'")
    assert summary.first_rejects[1].startswith("items.jsonl:4:")


def test_rate_paces_sends_on_the_clock():
    now = [0.0]
    sent_at: list[float] = []
    records = [RawRecord.at(_line(event_id=str(i)), "s", i) for i in range(11)]
    summary = publish_events(
        records,
        lambda *_: sent_at.append(now[0]),
        rules=ValidationRules(),
        rate=10.0,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        wall_clock=lambda: NOW,
    )
    np.testing.assert_allclose(sent_at, [i / 10 for i in range(11)])
    assert summary.seconds == pytest.approx(1.0)
    with pytest.raises(ConfigurationError):
        publish_events([], lambda *_: None, rules=ValidationRules(), rate=0)


# --- watch -----------------------------------------------------------------------------------


def _message(key: str, value: bytes | None, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        key=key.encode(), value=value, partition=0, offset=offset, timestamp=1_790_000_000_000
    )


def _update(user: str, version: int = 2) -> bytes:
    return (
        ProfileUpdate(
            user_id=user,
            version=version,
            model_id="m",
            updated_at="2026-09-21T14:13:20.000+00:00",
            event_time=None,
            event_count=7,
            drift=0.42,
            clusters=[ClusterSummary(label="Astronauts stranded on Mars", weight=3.25, size=4)],
            short=[0.0] * 4,
            long=[1.0] * 4,
        )
        .model_dump_json()
        .encode()
    )


def test_watch_shows_updates_erasures_and_bad_records_readably():
    messages = [
        _message("u1", _update("u1")),
        _message("u2", None, 1),
        _message("u3", b"{}", 2),
        _message("u1", _update("u1", 3), 3),
    ]
    items = list(follow_updates(messages))
    lines = [format_update(item) for item in items]
    assert lines[0] == ("14:13:20  u1  v2  7 events  drift 0.42  Astronauts stranded on Mars (3.2)")
    assert lines[1].endswith("u2  erased (tombstone)") and items[1].erased
    assert "undecodable update" in lines[2] and not items[2].erased
    assert [i.update.version for i in follow_updates(messages, user_id="u1")] == [2, 3]
    assert len(list(follow_updates(messages, max_updates=2))) == 2
    record = update_json(items[0])
    assert record["user_id"] == "u1" and "long" not in record and record["offset"] == 0
    assert update_json(items[0], include_vectors=True)["long"] == [1.0] * 4
    assert update_json(items[1]) == {"user_id": "u2", "erased": True, "partition": 0, "offset": 1}


# --- SQLite: client API and CLI ----------------------------------------------------------------

SPACE = [
    "Astronauts stranded on Mars fight to survive",
    "A starship crew racing through a wormhole",
    "The mission commander landing on a frozen moon",
    "Alien explorers searching for a habitable planet",
]
COOKING = [
    "Quick weeknight pasta with garlic and basil",
    "Slow-cooked beef stew with root vegetables",
    "Spicy Thai chicken curry with coconut milk",
]


def _events(user: str, texts: list[str]) -> list[dict]:
    return [
        {
            "event_id": f"{user}-{i}",
            "user_id": user,
            "ts": 1_790_000_000_000 + i * 60_000,
            "type": "click",
            "text": text,
        }
        for i, text in enumerate(texts)
    ]


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("users")
    events = (
        _events("space-fan", SPACE) + _events("space-too", SPACE[1:]) + _events("cook", COOKING)
    )
    path = tmp / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    url = f"sqlite:///{tmp}/profiles.db"
    code, output = _run(
        "run", str(path), "--store", url, "--encoder", "hashing", "--rejects", str(tmp / "r.jsonl")
    )
    assert code == 0, output
    return url


def _run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.output


def test_client_reads_arrays_and_scores_like_the_pure_function(store_url: str):
    with ProfileClient.from_url(store_url, encoder=HashingEncoder()) as client:
        fan = client.get("space-fan")
        assert fan.long.shape == (384,) and fan.centroids.shape[1] == 384
        assert len(fan.labels) == len(fan.cluster_weights) == fan.centroids.shape[0] >= 1
        assert set(client.get_many(["space-fan", "cook", "nobody"])) == {"space-fan", "cook"}
        with pytest.raises(UnknownUserError):
            client.get("nobody")
        texts = ["A starship crew racing through a wormhole", COOKING[0]]
        scores = client.score("space-fan", texts)
        assert scores[0] > scores[1]
        expected = score_candidates(fan, HashingEncoder().encode(texts), client.weights).total
        np.testing.assert_allclose(scores, expected)
        ranked = client.rank(
            "space-fan",
            [
                {"id": "c", "text": COOKING[1]},
                {"id": "s", "vector": HashingEncoder().encode([SPACE[0]])[0].tolist()},
            ],
        )
        assert [r.id for r in ranked] == ["s", "c"] and ranked[0].text is None
        context = client.contextual("space-fan", SPACE[0])
        assert context.shape == (384,) and np.linalg.norm(context) == pytest.approx(1, abs=1e-5)
        assert [s.user_id for s in client.similar("space-fan", k=2)] == ["space-too", "cook"]


def test_client_refuses_texts_from_another_model(store_url: str):
    class OtherModel(HashingEncoder):
        @property
        def model_id(self) -> str:
            return "all-MiniLM-L6-v2:fp32:abc"

    with ProfileClient.from_url(store_url, encoder=OtherModel()) as client:
        client.get("cook")  # reading vectors needs no encoder
        with pytest.raises(ModelMismatchError, match="cannot be compared"):
            client.score("cook", ["pasta"])


def test_profile_similar_score_and_rank_commands(store_url: str, tmp_path: Path):
    code, output = _run(
        "profile", "similar", "space-fan", "--store", store_url, "--k", "2", "--json"
    )
    assert code == 0, output
    similar = json.loads(output)["similar"]
    assert [s["user_id"] for s in similar] == ["space-too", "cook"]
    assert similar[0]["similarity"] > similar[1]["similarity"]
    assert similar[0]["top_interests"]
    code, output = _run("profile", "similar", "space-fan", "--store", store_url)
    assert code == 0 and "space-too" in output

    code, output = _run(
        "profile",
        "score",
        "space-fan",
        "--store",
        store_url,
        "--encoder",
        "hashing",
        "--text",
        SPACE[2],
        "--text",
        COOKING[2],
        "--json",
    )
    assert code == 0, output
    scores = json.loads(output)["scores"]
    assert [s["text"] for s in scores] == [SPACE[2], COOKING[2]]
    assert scores[0]["score"] > scores[1]["score"]
    code, output = _run(
        "profile",
        "score",
        "space-fan",
        "--store",
        store_url,
        "--encoder",
        "hashing",
        "--text",
        SPACE[2],
        "--short-weight",
        "0",
    )
    assert code == 0 and "score" in output

    candidates = tmp_path / "candidates.jsonl"
    candidates.write_text(
        json.dumps({"id": "dish", "text": COOKING[0]})
        + "\n"
        + json.dumps({"id": 7, "text": SPACE[3]})
        + "\n"
    )
    code, output = _run(
        "profile",
        "rank",
        "cook",
        "--store",
        store_url,
        "--encoder",
        "hashing",
        "--candidates",
        str(candidates),
        "--json",
    )
    assert code == 0, output
    assert [r["id"] for r in json.loads(output)["ranked"]] == ["dish", "7"]
    code, output = _run(
        "profile",
        "rank",
        "space-fan",
        "--store",
        store_url,
        "--encoder",
        "hashing",
        "--candidates",
        "-",
        "--top",
        "1",
        stdin=candidates.read_text(),
    )
    assert code == 0 and "7" in output and "dish" not in output


def test_bad_input_is_one_line_and_exit_2(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("interest_stream.streams.kafka.clients.BOOTSTRAP_TIMEOUT_S", 0.5)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "text": "x"}) + "\n{oops\n")
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(_events("u", SPACE[:1])[0]) + "\n")
    cases = [
        (("profile", "similar", "nobody", "--store", store_url), "no profile for user 'nobody'"),
        (
            (
                "profile",
                "score",
                "nobody",
                "--store",
                store_url,
                "--encoder",
                "hashing",
                "--text",
                "x",
            ),
            "no profile for user 'nobody'",
        ),
        (
            (
                "profile",
                "rank",
                "cook",
                "--store",
                store_url,
                "--encoder",
                "hashing",
                "--candidates",
                str(bad),
            ),
            f"{bad}:2: not JSON",
        ),
        (
            (
                "profile",
                "rank",
                "cook",
                "--store",
                store_url,
                "--candidates",
                str(tmp_path / "none.jsonl"),
            ),
            "none.jsonl: cannot read",
        ),
        (("profile", "similar", "cook", "--store", store_url, "--k", "0"), "k must be at least"),
        (
            (
                "profile",
                "score",
                "cook",
                "--store",
                store_url,
                "--encoder",
                "hashing",
                "--text",
                "x",
                "--temperature",
                "0",
            ),
            "temperature must be > 0",
        ),
        (
            ("profile", "get", "u", "--store", "cassandra://127.0.0.1:1/ks"),
            "cannot connect to Cassandra at 127.0.0.1:1/ks",
        ),
        (
            ("profile", "similar", "u", "--store", "cassandra://127.0.0.1:1/ks"),
            "cannot connect to Cassandra",
        ),
        (("publish", str(tmp_path / "missing.jsonl")), "missing.jsonl: no such file"),
        (("publish", str(events), "--brokers", "127.0.0.1:1"), "cannot reach Kafka at 127.0.0.1:1"),
        (("watch", "--brokers", "127.0.0.1:1", "--timeout", "1"), "cannot reach Kafka"),
    ]
    for args, message in cases:
        code, output = _run(*args)
        assert code == 2, (args, output)
        assert message in output, (args, output)
        assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
