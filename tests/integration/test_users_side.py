"""The users' side against the real local Kafka and Cassandra, with the real sentence encoder.

From an empty cluster (fresh topic prefix and keyspace, created by `interest-stream init`)
one module-wide pipeline is set up: a generated workload plus a few hand-made users is
`publish`ed, one worker process (ONNX encoder, so similarities mean something) folds it into
Cassandra. The tests then read it back the ways users do: `watch`, `profile get|similar|
score|rank`, and every README example, run as written with only the servers' names swapped.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from interest_stream.store import open_store
from interest_stream.streams.cli import main
from tests.integration.harness import ROOT, WorkerProcess, read_topic, total_events, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra, pytest.mark.slow]

HOUR_MS = 3_600_000
SPACE_FILMS = [
    "Astronauts stranded on Mars fight to survive",
    "A starship crew racing through a wormhole",
    "The mission commander landing on a frozen moon",
    "Alien explorers searching for a habitable planet",
    "A rookie cosmonaut escaping a dying space station",
]
MORE_SPACE_FILMS = [
    "A lone pilot lost in orbit around Jupiter",
    "Interstellar voyage to save humanity from a dying Earth",
    "Cosmonauts repair a broken satellite during a solar storm",
    "First contact with aliens on a distant space station",
]
COOKING_SHOWS = [
    "Quick weeknight pasta with garlic and basil",
    "Slow-cooked beef stew with root vegetables",
    "Spicy Thai chicken curry with coconut milk",
    "A baking show: sourdough bread for beginners",
]


def _clicks(user_id: str, texts: list[str], now_ms: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{user_id}-{i}",
            "user_id": user_id,
            "ts": now_ms - (len(texts) - i) * HOUR_MS,
            "type": "click",
            "text": text,
        }
        for i, text in enumerate(texts)
    ]


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str,
    kafka_admin: Any,
    cassandra_contact: tuple[str, int],
    cassandra_session: Any,
    onnx_encoder: Any,  # exports the fp32 model if missing, so the worker's encoder loads
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("users-side")
    prefix = f"u{uuid.uuid4().hex[:10]}-"
    keyspace = f"ks_{uuid.uuid4().hex[:12]}"
    host, port = cassandra_contact
    store_url = f"cassandra://{host}:{port}/{keyspace}"
    common = {"bootstrap": kafka_bootstrap, "prefix": prefix, "keyspace": keyspace}
    worker = WorkerProcess(
        bootstrap=kafka_bootstrap,
        prefix=prefix,
        store_url=store_url,
        log_path=tmp / "worker.log",
        batch_size=128,
        encoder="onnx",
    )
    try:
        code, output = _cli(
            "init", "--topic-prefix", prefix, "--brokers", kafka_bootstrap, "--store", store_url,
            "--partitions", "3",
        )  # fmt: skip
        assert code == 0, output
        generated = tmp / "generated.jsonl"
        code, output = _cli("generate", "--users", "12", "--events-per-user", "12",
                            "-o", str(generated))  # fmt: skip
        assert code == 0, output
        now_ms = int(time.time() * 1000)
        crafted = (
            _clicks("space-fan", SPACE_FILMS, now_ms)
            + _clicks("space-buff", MORE_SPACE_FILMS, now_ms)
            + _clicks("home-cook", COOKING_SHOWS, now_ms)
        )
        crafted_path = tmp / "crafted.jsonl"
        crafted_path.write_text("".join(json.dumps(e) + "\n" for e in crafted))
        sent = 0
        for path in (generated, crafted_path):
            code, output = _cli("publish", str(path), "--brokers", kafka_bootstrap,
                                "--topic-prefix", prefix, "--json")  # fmt: skip
            assert code == 0, output
            summary = json.loads(output)
            assert summary["rejected"] == 0 and summary["sent"] == summary["records"]
            sent += summary["sent"]
        assert sent == 12 * 12 + len(crafted)
        worker.start()
        wait_until(
            lambda: total_events(store_url) >= sent, 120, f"{sent} events applied", worker.log_tail
        )
        yield {**common, "store": store_url, "events": sent, "worker": worker}
    finally:
        worker.stop()
        mine = [t for t in kafka_admin.list_topics() if t.startswith(prefix)]
        if mine:
            kafka_admin.delete_topics(mine, timeout_ms=10_000)
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)


def test_watch_shows_the_updates_as_json_lines_and_readably(pipeline: dict[str, Any]):
    code, output = _cli(
        "watch", "--brokers", pipeline["bootstrap"], "--topic-prefix", pipeline["prefix"],
        "--from-beginning", "--json", "--timeout", "5",
    )  # fmt: skip
    assert code == 0, output
    records = [json.loads(line) for line in output.splitlines()]
    assert len(records) >= 5
    assert all(r["version"] >= 1 and "long" not in r for r in records)
    # An early update may hold only a user's negative review (no liked cluster yet); the
    # latest one of a user with liked events has clusters. A user's updates share a
    # partition, so the last one read is the last one published.
    latest = {r["user_id"]: r for r in records}
    assert latest["space-fan"]["clusters"]
    code, output = _cli(
        "watch", "--brokers", pipeline["bootstrap"], "--topic-prefix", pipeline["prefix"],
        "--from-beginning", "--user", "space-fan", "--timeout", "5",
    )  # fmt: skip
    assert code == 0, output
    lines = output.splitlines()
    assert lines and all(line.split()[1] == "space-fan" for line in lines)
    assert "events" in lines[-1] and "drift" in lines[-1]
    assert any(film[:30] in lines[-1] for film in SPACE_FILMS)


def test_publish_items_sends_the_catalogue_to_the_items_topic(
    pipeline: dict[str, Any], tmp_path: Any
):
    catalogue = tmp_path / "items.jsonl"
    catalogue.write_text(
        '{"item_id": "doc-1", "text": "A documentary about coral reefs", "domain": "movies"}\n'
        '{"item_id": "doc-2", "text": "A documentary about deep sea vents"}\n'
    )
    code, output = _cli(
        "publish", str(catalogue), "--items", "--brokers", pipeline["bootstrap"],
        "--topic-prefix", pipeline["prefix"], "--json",
    )  # fmt: skip
    assert code == 0, output
    assert json.loads(output)["sent_per_topic"] == {pipeline["prefix"] + "items": 2}
    messages = read_topic(pipeline["bootstrap"], pipeline["prefix"] + "items", timeout_s=5)
    assert {m.key for m in messages} >= {b"doc-1", b"doc-2"}


def test_profile_get_similar_and_score_over_cassandra(pipeline: dict[str, Any]):
    store = pipeline["store"]
    code, output = _cli("profile", "get", "space-fan", "--store", store, "--json")
    assert code == 0, output
    record = json.loads(output)
    assert record["user_id"] == "space-fan" and record["event_count"] == len(SPACE_FILMS)
    assert record["model_id"].startswith("all-MiniLM-L6-v2:")  # the real sentence encoder
    label = record["clusters"][0]["label"]  # an excerpt of the medoid's text
    assert any(title.startswith(label.removesuffix("…")) for title in SPACE_FILMS), label
    code, output = _cli("profile", "get", "space-fan", "--store", store)
    assert code == 0 and "space-fan" in output

    code, output = _cli("profile", "similar", "space-fan", "--store", store, "--k", "20",
                        "--json")  # fmt: skip
    assert code == 0, output
    similar = {s["user_id"]: s["similarity"] for s in json.loads(output)["similar"]}
    assert "space-fan" not in similar
    assert next(iter(similar)) == "space-buff"  # the other space-film fan is the nearest
    assert similar["space-buff"] > similar["home-cook"] + 0.2

    code, output = _cli(
        "profile", "score", "space-fan", "--store", store, "--json",
        "--text", "An astronaut is marooned on a distant planet",
        "--text", "A cooking show: one-pot lentil soup with cumin",
    )  # fmt: skip
    assert code == 0, output
    space, cooking = (s["score"] for s in json.loads(output)["scores"])
    assert space > cooking + 0.2, (space, cooking)

    code, output = _cli("profile", "get", "nobody", "--store", store)
    assert code == 2 and "no profile for user 'nobody'" in output


def _readme_examples() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n# example: (\w+)\n(.*?)```", text, flags=re.DOTALL)
    return dict(blocks)


def _run_example(
    name: str, pipeline: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], str]:
    code = _readme_examples()[name]
    for topic in ("clicks", "profile-updates"):
        code = code.replace(f'"{topic}"', f'"{pipeline["prefix"]}{topic}"')
    code = code.replace('"127.0.0.1:9092"', f'"{pipeline["bootstrap"]}"')
    # The keyspace in URLs and connect() calls, not the package name in imports.
    code = re.sub(r"(?<![\w.])interest_stream(?=[\"')])", pipeline["keyspace"], code)
    code = code.replace("consumer_timeout_ms=10_000", "consumer_timeout_ms=3_000")
    namespace: dict[str, Any] = {"__name__": f"readme_{name}"}
    capsys.readouterr()
    exec(compile(code, f"README.md example {name}", "exec"), namespace)
    return namespace, capsys.readouterr().out


def test_readme_examples_run_against_the_servers(
    pipeline: dict[str, Any], capsys: pytest.CaptureFixture[str]
):
    assert set(_readme_examples()) == {"producer", "consumer", "ann", "client"}
    store = open_store(pipeline["store"])
    try:
        _run_example("producer", pipeline, capsys)
        # The producer's click is new: user-42 appears once the worker has folded it.
        wait_until(
            lambda: "user-42" in store.get(["user-42"]),
            60,
            "the README producer's event applied",
            pipeline["worker"].log_tail,
        )
    finally:
        store.close()

    namespace, output = _run_example("consumer", pipeline, capsys)
    assert "user-42" in namespace["latest"] and "space-fan" in namespace["latest"]
    assert any(line.startswith("user-42 1 ") for line in output.splitlines()), output

    namespace, output = _run_example("ann", pipeline, capsys)
    assert output.splitlines()[0].split()[0] == "user-42", output  # itself, cosine 1

    namespace, output = _run_example("client", pipeline, capsys)
    assert [c.id for c in namespace["ranked"]] == ["film-7", "show-1"]
    scores = namespace["scores"]
    assert scores[0] > scores[1]
    assert namespace["tonight"].shape == (384,)
    assert namespace["neighbours"] and namespace["neighbours"][0].user_id != "user-42"
