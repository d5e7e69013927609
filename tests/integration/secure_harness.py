"""A pytest plugin (tests/conftest.py loads it) for the tests against the secure local
servers (`deploy/local/up --secure`): every command runs as a real process as one
identity (init, worker, reader, eraser, producer), with its credentials in INTEREST_STREAM_*
variables only, as `source $LOCAL_SERVERS_HOME/secure/<identity>.env` would set them.

- ``secure_pipeline`` (session): init (as init, granting the others), publish (as the
  producer) and a worker (as the worker, hashing encoder) on a fresh topic prefix and
  keyspace, until the profiles of USERS are stored; dropped afterwards by the super users
- ``cli(secure, identity, *args, env=..., stdin=...)``: `interest-stream ARGS` as that
  identity; its output never contains a password
- ``one_line_error(result)``: the `error:` line of a command that failed with status 2
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from interest_stream.store import open_store
from interest_stream.streams.settings import Settings, load_settings
from tests.integration.conftest_servers import identity_env, local_script, servers_home
from tests.integration.harness import WorkerProcess, wait_until

IDENTITIES = ("init", "worker", "reader", "eraser", "producer")
USERS = {"space-fan": 6, "home-cook": 5, "bookworm": 4}
TEXTS = {
    "space-fan": "Astronauts stranded on Mars fight to survive, part {}",
    "home-cook": "Quick weeknight pasta with garlic and basil, take {}",
    "bookworm": "A long novel about a lighthouse keeper, chapter {}",
}


def secrets_of(secure: dict[str, str]) -> list[str]:
    """Every password of the secure servers (the generated passwords file)."""
    passwords = servers_home() / "secure" / "passwords"
    values = [line.partition("=")[2] for line in passwords.read_text().splitlines()]
    values += [v for k, v in secure.items() if k.endswith("PASSWORD")]
    return [v for v in values if v]


def assert_no_secret(secure: dict[str, str], text: str, where: str) -> None:
    for secret in secrets_of(secure):
        assert secret not in text, f"a password appears in {where}"


def identity_vars(identity: str, **overrides: str | None) -> dict[str, str]:
    """This process's environment without INTEREST_STREAM_* settings, plus one identity's
    env file, plus overrides (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEREST_STREAM_")}
    env.update(identity_env(identity))
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def cli(
    secure: dict[str, str],
    identity: str,
    *args: str,
    env: dict[str, str | None] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`interest-stream ARGS` as a process of `identity`; its output never has a password."""
    result = subprocess.run(
        [sys.executable, "-m", "interest_stream.streams.cli", *args],
        env=identity_vars(identity, **(env or {})),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )
    assert_no_secret(secure, result.stdout + result.stderr, f"the output of {args}")
    return result


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exit status 2 and its error line; no traceback anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def identity_settings(identity: str, **overrides: Any) -> Settings:
    """Settings of one identity given explicitly (not read from this process's env)."""
    values = {
        k[len("INTEREST_STREAM_") :].lower(): v
        for k, v in identity_env(identity).items()
        if k.startswith("INTEREST_STREAM_")
    }
    return load_settings(**{**values, **overrides})


@dataclass(frozen=True)
class SecurePipeline:
    secure: dict[str, str]
    env: dict[str, str | None]
    """The overrides every command of the pipeline runs with (store URL, topic prefix)."""
    prefix: str
    keyspace: str
    tmp: Path
    worker: WorkerProcess

    def settings(self, identity: str) -> Settings:
        return identity_settings(
            identity, store_url=self.env["INTEREST_STREAM_STORE_URL"], topic_prefix=self.prefix
        )


def event_counts(settings: Settings) -> dict[str, int]:
    store = open_store(settings.store_url, cassandra=settings.cassandra_options())
    try:
        return {u: p.event_count for u, p in store.get(list(USERS)).items()}
    finally:
        store.close()


@pytest.fixture(scope="session")
def secure_pipeline(
    secure_servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecurePipeline]:
    secure = secure_servers
    tmp = tmp_path_factory.mktemp("secure")
    prefix = f"s{uuid.uuid4().hex[:10]}-"
    keyspace = f"ks_{uuid.uuid4().hex[:12]}"
    store_url = identity_env("worker")["INTEREST_STREAM_STORE_URL"].rsplit("/", 1)[0]
    env: dict[str, str | None] = {
        "INTEREST_STREAM_STORE_URL": f"{store_url}/{keyspace}",
        "INTEREST_STREAM_TOPIC_PREFIX": prefix,
        # init grants the worker this group alone (the lab's worker process uses it)
        "INTEREST_STREAM_CONSUMER_GROUP": f"{prefix}group",
    }
    worker = WorkerProcess(
        bootstrap=secure["INTEREST_STREAM_BROKERS"],
        prefix=prefix,
        store_url=env["INTEREST_STREAM_STORE_URL"],
        log_path=tmp / "worker.log",
        batch_size=16,
        env=identity_vars("worker"),
        group=f"{prefix}group",
    )
    pipeline = SecurePipeline(secure, env, prefix, keyspace, tmp, worker)
    try:
        init = cli(secure, "init", "init", "--partitions", "2", env=env)
        assert init.returncode == 0, init.stdout + init.stderr
        assert f"topic {prefix}clicks: created" in init.stdout
        assert f"cassandra {keyspace}.profiles: created" in init.stdout
        worker_group = f"granted kafka User:interest-stream-worker: READ on group {prefix}group"
        assert worker_group in init.stdout, init.stdout
        assert f"granted cassandra profile_reader: SELECT on {keyspace}.profiles" in init.stdout
        now_ms = int(time.time() * 1000)
        events = [
            {
                "event_id": f"{user}-{i}",
                "user_id": user,
                "ts": now_ms - (count - i) * 60_000,
                "type": "click",
                "text": TEXTS[user].format(i),
            }
            for user, count in USERS.items()
            for i in range(count)
        ]
        path = tmp / "events.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        sent = cli(secure, "producer", "publish", str(path), "--json", env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert json.loads(sent.stdout)["sent"] == len(events)
        worker.start()
        reader = pipeline.settings("reader")
        wait_until(lambda: event_counts(reader) == USERS, 120, "profiles", worker.log_tail)
        yield pipeline
    finally:
        worker.stop()
        drop(secure, prefix, keyspace)


def drop(secure: dict[str, str], prefix: str, keyspace: str) -> None:
    """Best effort, as the super users: the topics and the keyspace of one pipeline."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(**super_user_kafka(secure))
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine, timeout_ms=10_000)
    finally:
        admin.close()
    local_script("cql", "--secure", f"DROP KEYSPACE IF EXISTS {keyspace}")


def super_user_kafka(secure: dict[str, str]) -> dict[str, Any]:
    return kafka_client_options(
        secure, secure["LOCAL_KAFKA_ADMIN_USER"], secure["LOCAL_KAFKA_ADMIN_PASSWORD"]
    )


def kafka_client_options(secure: dict[str, str], user: str, password: str) -> dict[str, Any]:
    """kafka-python options for one SCRAM user of the secure broker."""
    return {
        "bootstrap_servers": secure["INTEREST_STREAM_BROKERS"],
        "security_protocol": "SASL_SSL",
        "ssl_cafile": secure["LOCAL_SECURE_CAFILE"],
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
        "request_timeout_ms": 10_000,
    }
