"""The pipeline against the secure local servers (`deploy/local/up --secure`): Kafka on
SASL_SSL (SCRAM-SHA-512, ACLs) and Cassandra with TLS required, password authentication and
roles. Every command runs as a real process with its credentials in INTEREST_STREAM_*
variables only, as `source $LOCAL_SERVERS_HOME/secure/credentials.env` would set them:
what works with the right credentials, what is refused (wrong password, plaintext, a
read-only role writing) as one line, and that no secret ever shows in any output or log.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interest_stream.store import open_store
from interest_stream.streams.settings import Settings, load_settings
from tests.integration.conftest_servers import local_script, servers_home
from tests.integration.harness import WorkerProcess, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra]

SECRETS = (
    "INTEREST_STREAM_KAFKA_PASSWORD",
    "INTEREST_STREAM_CASSANDRA_PASSWORD",
    "LOCAL_KAFKA_ADMIN_PASSWORD",
    "LOCAL_KAFKA_READER_PASSWORD",
    "LOCAL_CASSANDRA_ADMIN_PASSWORD",
    "LOCAL_CASSANDRA_READER_PASSWORD",
)
WRONG = "not-the-password-" + uuid.uuid4().hex[:8]
USERS = {"space-fan": 6, "home-cook": 5, "bookworm": 4}
TEXTS = {
    "space-fan": "Astronauts stranded on Mars fight to survive, part {}",
    "home-cook": "Quick weeknight pasta with garlic and basil, take {}",
    "bookworm": "A long novel about a lighthouse keeper, chapter {}",
}


def _secrets(secure: dict[str, str]) -> list[str]:
    values = [secure[name] for name in SECRETS]
    passwords = servers_home() / "secure" / "passwords"
    values += [line.partition("=")[2] for line in passwords.read_text().splitlines()]
    return [v for v in values if v]


def _assert_no_secret(secure: dict[str, str], text: str, where: str) -> None:
    for secret in _secrets(secure):
        assert secret not in text, f"a password appears in {where}"


def _env(secure: dict[str, str], **overrides: str | None) -> dict[str, str]:
    """This process's environment without INTEREST_STREAM_* settings, plus the secure
    servers' client variables, plus overrides (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEREST_STREAM_")}
    env.update({k: v for k, v in secure.items() if k.startswith("INTEREST_STREAM_")})
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _cli(
    secure: dict[str, str],
    *args: str,
    env: dict[str, str | None] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`interest-stream ARGS` as a process; its output never contains a password."""
    result = subprocess.run(
        [sys.executable, "-m", "interest_stream.streams.cli", *args],
        env=_env(secure, **(env or {})),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )
    _assert_no_secret(secure, result.stdout + result.stderr, f"the output of {args}")
    return result


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exit status 2 and its error line; no traceback anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def _settings(secure: dict[str, str], store_url: str, **overrides: Any) -> Settings:
    """Settings with the secure servers' credentials given explicitly (not from the env)."""
    return load_settings(
        brokers=secure["INTEREST_STREAM_BROKERS"],
        store_url=store_url,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_username=secure["INTEREST_STREAM_KAFKA_USERNAME"],
        kafka_password=secure["INTEREST_STREAM_KAFKA_PASSWORD"],
        kafka_ssl_cafile=secure["INTEREST_STREAM_KAFKA_SSL_CAFILE"],
        cassandra_username=secure["INTEREST_STREAM_CASSANDRA_USERNAME"],
        cassandra_password=secure["INTEREST_STREAM_CASSANDRA_PASSWORD"],
        cassandra_ssl_cafile=secure["INTEREST_STREAM_CASSANDRA_SSL_CAFILE"],
        **overrides,
    )


def _event_counts(settings: Settings) -> dict[str, int]:
    store = open_store(settings.store_url, cassandra=settings.cassandra_options())
    try:
        return {u: p.event_count for u, p in store.get(list(USERS)).items()}
    finally:
        store.close()


@pytest.fixture(scope="module")
def pipeline(
    secure_servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """init, publish and a worker (hashing encoder) through the secure servers."""
    secure = secure_servers
    tmp = tmp_path_factory.mktemp("secure")
    prefix = f"s{uuid.uuid4().hex[:10]}-"
    keyspace = f"ks_{uuid.uuid4().hex[:12]}"
    store_url = secure["INTEREST_STREAM_STORE_URL"].rsplit("/", 1)[0] + f"/{keyspace}"
    env: dict[str, str | None] = {
        "INTEREST_STREAM_STORE_URL": store_url,
        "INTEREST_STREAM_TOPIC_PREFIX": prefix,
    }
    settings = _settings(secure, store_url, topic_prefix=prefix)
    worker = WorkerProcess(
        bootstrap=secure["INTEREST_STREAM_BROKERS"],
        prefix=prefix,
        store_url=store_url,
        log_path=tmp / "worker.log",
        batch_size=16,
        env=_env(secure),
    )
    try:
        init = _cli(secure, "init", "--partitions", "2", env=env)
        assert init.returncode == 0, init.stdout + init.stderr
        assert f"topic {prefix}clicks: created" in init.stdout
        assert f"cassandra {keyspace}.profiles: created" in init.stdout
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
        sent = _cli(secure, "publish", str(path), "--json", env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert json.loads(sent.stdout)["sent"] == len(events)
        worker.start()
        wait_until(lambda: _event_counts(settings) == USERS, 120, "profiles", worker.log_tail)
        yield {"secure": secure, "env": env, "settings": settings, "tmp": tmp, "worker": worker}
    finally:
        worker.stop()
        _drop(secure, prefix, keyspace)


def _drop(secure: dict[str, str], prefix: str, keyspace: str) -> None:
    """Best effort, as the admins: the topics and the keyspace of one module."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=secure["INTEREST_STREAM_BROKERS"],
        security_protocol="SASL_SSL",
        ssl_cafile=secure["LOCAL_SECURE_CAFILE"],
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=secure["LOCAL_KAFKA_ADMIN_USER"],
        sasl_plain_password=secure["LOCAL_KAFKA_ADMIN_PASSWORD"],
    )
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine, timeout_ms=10_000)
    finally:
        admin.close()
    local_script("cql", "--secure", f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_every_command_works_with_credentials_from_the_environment(pipeline: dict[str, Any]):
    secure, env = pipeline["secure"], pipeline["env"]
    watched = _cli(secure, "watch", "--from-beginning", "--json", "--max", "3",
                   "--timeout", "30", env=env)  # fmt: skip
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert {json.loads(line)["user_id"] for line in watched.stdout.splitlines()} <= set(USERS)
    got = _cli(secure, "profile", "get", "space-fan", "--json", env=env)
    assert got.returncode == 0, got.stdout + got.stderr
    assert json.loads(got.stdout)["event_count"] == USERS["space-fan"]
    similar = _cli(secure, "profile", "similar", "space-fan", "--json", env=env)
    assert similar.returncode == 0, similar.stdout + similar.stderr
    own, other = TEXTS["space-fan"].format(1), "garlic pasta"
    scored = _cli(secure, "profile", "score", "space-fan", "--encoder", "hashing", "--json",
                  "--text", own, "--text", other, env=env)  # fmt: skip
    assert scored.returncode == 0, scored.stdout + scored.stderr
    first, second = json.loads(scored.stdout)["scores"]
    assert first["text"] == own and first["score"] > second["score"]
    assert pipeline["worker"].alive(), pipeline["worker"].log_tail()


def test_the_traffic_is_tls_on_both_servers(secure_servers: dict[str, str]):
    context = ssl.create_default_context(cafile=secure_servers["LOCAL_SECURE_CAFILE"])
    for address in ("LOCAL_KAFKA_SECURE_BOOTSTRAP", "LOCAL_CASSANDRA_SECURE_CONTACT"):
        host, _, port = secure_servers[address].rpartition(":")
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize(
    ("command", "variable", "expected"),
    [
        (
            ("init", "--no-cassandra", "--timeout", "3"),
            "INTEREST_STREAM_KAFKA_PASSWORD",
            "refused the credentials",
        ),
        (("publish", "-"), "INTEREST_STREAM_KAFKA_PASSWORD", "refused the credentials"),
        (("worker", "--encoder", "hashing"), "INTEREST_STREAM_KAFKA_PASSWORD", "refused the"),
        (
            ("worker", "--encoder", "hashing"),
            "INTEREST_STREAM_CASSANDRA_PASSWORD",
            "Bad credentials",
        ),
        (("profile", "get", "space-fan"), "INTEREST_STREAM_CASSANDRA_PASSWORD", "Bad credentials"),
        (("init", "--no-kafka"), "INTEREST_STREAM_CASSANDRA_PASSWORD", "Bad credentials"),
    ],
)
def test_a_wrong_password_is_refused_in_one_line(
    pipeline: dict[str, Any], command: tuple[str, ...], variable: str, expected: str
):
    secure = pipeline["secure"]
    result = _cli(secure, *command, env={**pipeline["env"], variable: WRONG}, stdin="")
    error = _one_line_error(result)
    assert expected in error and WRONG not in result.stdout + result.stderr


def test_plaintext_clients_are_refused(pipeline: dict[str, Any]):
    secure, env = pipeline["secure"], pipeline["env"]
    kafka = _cli(
        secure, "publish", "-", stdin="",
        env={**env, "INTEREST_STREAM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
    )  # fmt: skip
    assert "closed the PLAINTEXT connection at once" in _one_line_error(kafka)
    cassandra = _cli(
        secure, "profile", "get", "space-fan",
        env={**env, "INTEREST_STREAM_CASSANDRA_SSL_CAFILE": None},
    )  # fmt: skip
    assert "cannot connect to Cassandra" in _one_line_error(cassandra)
    # the bare clients, too: a plaintext CQL connection is closed, nothing is answered
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster, NoHostAvailable

    host, _, port = secure["LOCAL_CASSANDRA_SECURE_CONTACT"].rpartition(":")
    cluster = Cluster(
        [host],
        port=int(port),
        protocol_version=4,
        connect_timeout=5,
        auth_provider=PlainTextAuthProvider(
            secure["LOCAL_CASSANDRA_ADMIN_USER"], secure["LOCAL_CASSANDRA_ADMIN_PASSWORD"]
        ),
    )
    with pytest.raises(NoHostAvailable):
        cluster.connect()
    cluster.shutdown()


def test_the_read_only_role_reads_profiles_and_cannot_write_them(pipeline: dict[str, Any]):
    secure, env = pipeline["secure"], pipeline["env"]
    keyspace = env["INTEREST_STREAM_STORE_URL"].rsplit("/", 1)[1]  # type: ignore[union-attr]
    grant = f"GRANT SELECT ON KEYSPACE {keyspace} TO profile_reader"
    granted = local_script("cql", "--secure", grant)
    assert granted.returncode == 0, granted.stdout + granted.stderr
    reader = {
        **env,
        "INTEREST_STREAM_CASSANDRA_USERNAME": secure["LOCAL_CASSANDRA_READER_USER"],
        "INTEREST_STREAM_CASSANDRA_PASSWORD": secure["LOCAL_CASSANDRA_READER_PASSWORD"],
    }
    got = _cli(secure, "profile", "get", "home-cook", "--json", env=reader)
    assert got.returncode == 0, got.stdout + got.stderr
    assert json.loads(got.stdout)["event_count"] == USERS["home-cook"]

    event = {"event_id": "w-1", "user_id": "home-cook", "ts": int(time.time() * 1000),
             "type": "click", "text": "An attempt to write"}  # fmt: skip
    tmp = pipeline["tmp"]
    written = _cli(secure, "run", "-", "--encoder", "hashing", "--rejects", str(tmp / "rej.jsonl"),
                   env=reader, stdin=json.dumps(event) + "\n", cwd=tmp)  # fmt: skip
    error = _one_line_error(written)
    assert "Unauthorized" in error and "profile_reader has no MODIFY permission" in error
    schema = _cli(secure, "init", "--no-kafka", env=reader)
    assert "profile_reader has no CREATE permission" in _one_line_error(schema)
    assert _event_counts(pipeline["settings"]) == USERS  # nothing was written

    # the read-only Kafka user follows updates and cannot publish
    kafka_reader = {
        **env,
        "INTEREST_STREAM_KAFKA_USERNAME": secure["LOCAL_KAFKA_READER_USER"],
        "INTEREST_STREAM_KAFKA_PASSWORD": secure["LOCAL_KAFKA_READER_PASSWORD"],
    }
    watched = _cli(secure, "watch", "--from-beginning", "--json", "--max", "1",
                   "--timeout", "30", env=kafka_reader)  # fmt: skip
    assert watched.returncode == 0, watched.stdout + watched.stderr
    path = tmp / "reader-events.jsonl"
    path.write_text(json.dumps(event) + "\n")
    refused = _cli(secure, "publish", str(path), env=kafka_reader)
    assert "AuthorizationFailed" in _one_line_error(refused)


def test_secrets_never_appear_in_help_logs_or_json(pipeline: dict[str, Any]):
    secure, env = pipeline["secure"], pipeline["env"]
    for command in ((), ("init",), ("publish",), ("worker",), ("watch",), ("profile", "get")):
        shown = _cli(secure, *command, "--help", env=env)
        assert shown.returncode == 0, shown.stdout + shown.stderr
    # -vv: the drivers' debug logs too (kafka-python's admin client logs its configuration)
    full = _cli(secure, "-vv", "profile", "get", "bookworm", "--json", "--vectors", env=env)
    assert full.returncode == 0 and '"long"' in full.stdout, full.stdout + full.stderr
    for command in (
        ("init", "--no-cassandra", "--partitions", "2"),
        ("watch", "--from-beginning", "--max", "1", "--timeout", "20"),
    ):
        debug = _cli(secure, "-vv", *command, env=env)
        assert debug.returncode == 0 and "DEBUG" in debug.stderr, debug.stdout + debug.stderr
    _assert_no_secret(secure, pipeline["worker"].log_path.read_text(), "the worker's log")
    for name in ("kafka-secure", "cassandra-secure"):
        for log in (servers_home() / "run" / name / "logs").glob("*"):
            if log.is_file():
                _assert_no_secret(secure, log.read_text(errors="replace"), str(log))


@pytest.mark.slow
def test_bench_pipeline_passes_credentials_to_its_workers_and_clients(
    secure_servers: dict[str, str], onnx_encoder: Any
):
    from interest_stream.streams.lab.pipeline import bench_pipeline

    base = secure_servers["INTEREST_STREAM_STORE_URL"].rsplit("/", 1)[0]
    # credentials given in the settings only: the bench hands them on itself
    settings = _settings(secure_servers, f"{base}/unused", batch_size=32, precision="fp32")
    results = bench_pipeline(
        settings,
        onnx_encoder,
        shapes=("default",),
        scale=0.03,
        freshness_rate=20,
        freshness_seconds=2,
    )
    shape = results["shapes"]["default"]
    assert shape["pipeline_real_encoder"]["events"] == shape["events"] > 0
    assert shape["pipeline_encoding_excluded"]["events_per_s"] > 0
    assert shape["raw_vector_rows"]["events_per_s"] > 0
    assert shape["freshness"]["events"] == 40
