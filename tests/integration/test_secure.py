"""The pipeline against the secure local servers (`deploy/local/up --secure`): Kafka on
SASL_SSL (SCRAM-SHA-512, ACLs) and Cassandra with TLS required, password authentication and
roles. Every command runs as a real process as one identity (init, worker, reader, eraser,
producer: see tests/integration/secure_harness.py), its credentials in INTEREST_STREAM_*
variables only: what works with the right credentials, what is refused (wrong password,
plaintext, a password in clear) as one line, and that no secret ever shows in any output
or log. What each identity may not do: test_least_privilege.py; host names: test_tls.py.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

import pytest

from tests.integration.conftest_servers import servers_home
from tests.integration.secure_harness import (
    TEXTS,
    USERS,
    SecurePipeline,
    assert_no_secret,
    cli,
    one_line_error,
)

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra]

WRONG = "not-the-password-0123abcd"


def test_every_command_works_with_credentials_from_the_environment(
    secure_pipeline: SecurePipeline,
):
    secure, env = secure_pipeline.secure, secure_pipeline.env
    watched = cli(secure, "reader", "watch", "--from-beginning", "--json", "--max", "3",
                  "--timeout", "30", env=env)  # fmt: skip
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert {json.loads(line)["user_id"] for line in watched.stdout.splitlines()} <= set(USERS)
    grouped = cli(secure, "reader", "watch", "--from-beginning", "--max", "1", "--timeout", "30",
                  "--group", "profile-reader-dashboard", env=env)  # fmt: skip
    assert grouped.returncode == 0, grouped.stdout + grouped.stderr
    got = cli(secure, "reader", "profile", "get", "space-fan", "--json", env=env)
    assert got.returncode == 0, got.stdout + got.stderr
    assert json.loads(got.stdout)["event_count"] == USERS["space-fan"]
    similar = cli(secure, "reader", "profile", "similar", "space-fan", "--json", env=env)
    assert similar.returncode == 0, similar.stdout + similar.stderr
    own, other = TEXTS["space-fan"].format(1), "garlic pasta"
    scored = cli(secure, "reader", "profile", "score", "space-fan", "--encoder", "hashing",
                 "--json", "--text", own, "--text", other, env=env)  # fmt: skip
    assert scored.returncode == 0, scored.stdout + scored.stderr
    first, second = json.loads(scored.stdout)["scores"]
    assert first["text"] == own and first["score"] > second["score"]
    # forget as the eraser (a user with no profile: the others' profiles stay for the
    # other tests): fence claim, erasure record and tombstone all allowed
    forgot = cli(secure, "eraser", "forget", "never-seen-user", "--reason", "test", env=env)
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    assert secure_pipeline.worker.alive(), secure_pipeline.worker.log_tail()


def test_init_again_changes_nothing_and_grants_the_same(secure_pipeline: SecurePipeline):
    secure, env = secure_pipeline.secure, secure_pipeline.env
    again = cli(secure, "init", "init", "--partitions", "2", "--json", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads(again.stdout)
    assert {t["status"] for t in report["kafka"]["topics"]} == {"exists"}
    assert report["kafka"]["configured"] == []  # the erasure bounds were set at creation
    assert report["cassandra"]["created"] == []
    assert report["kafka"]["grants"] and report["cassandra"]["grants"]


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
    ("identity", "command", "variable", "expected"),
    [
        (
            "init",
            ("init", "--no-cassandra", "--timeout", "3"),
            "INTEREST_STREAM_KAFKA_PASSWORD",
            "refused the credentials",
        ),
        ("producer", ("publish", "-"), "INTEREST_STREAM_KAFKA_PASSWORD", "refused the credentials"),
        (
            "worker",
            ("worker", "--encoder", "hashing"),
            "INTEREST_STREAM_KAFKA_PASSWORD",
            "refused the",
        ),
        (
            "worker",
            ("worker", "--encoder", "hashing"),
            "INTEREST_STREAM_CASSANDRA_PASSWORD",
            "Bad credentials",
        ),
        (
            "reader",
            ("profile", "get", "space-fan"),
            "INTEREST_STREAM_CASSANDRA_PASSWORD",
            "Bad credentials",
        ),
        ("init", ("init", "--no-kafka"), "INTEREST_STREAM_CASSANDRA_PASSWORD", "Bad credentials"),
        ("eraser", ("forget", "someone"), "INTEREST_STREAM_KAFKA_PASSWORD", "refused the"),
    ],
)
def test_a_wrong_password_is_refused_in_one_line(
    secure_pipeline: SecurePipeline,
    identity: str,
    command: tuple[str, ...],
    variable: str,
    expected: str,
):
    secure = secure_pipeline.secure
    result = cli(secure, identity, *command, env={**secure_pipeline.env, variable: WRONG}, stdin="")
    error = one_line_error(result)
    assert expected in error and WRONG not in result.stdout + result.stderr


def test_plaintext_clients_are_refused(secure_pipeline: SecurePipeline):
    secure, env = secure_pipeline.secure, secure_pipeline.env
    kafka = cli(
        secure, "producer", "publish", "-", stdin="",
        env={**env, "INTEREST_STREAM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
    )  # fmt: skip
    assert "closed the PLAINTEXT connection at once" in one_line_error(kafka)
    # no CA file: the password would travel in clear, so nothing is sent at all ...
    no_tls = {**env, "INTEREST_STREAM_CASSANDRA_SSL_CAFILE": None}
    in_clear = cli(secure, "reader", "profile", "get", "space-fan", env=no_tls)
    assert "would travel in clear" in one_line_error(in_clear)
    # ... and when allowed explicitly, the TLS-only node refuses the plaintext connection
    allowed = {**no_tls, "INTEREST_STREAM_ALLOW_PLAINTEXT_PASSWORD": "true"}
    cassandra = cli(secure, "reader", "profile", "get", "space-fan", env=allowed)
    assert "cannot connect to Cassandra" in one_line_error(cassandra)
    # SASL PLAIN over SASL_PLAINTEXT would send the Kafka password in clear: refused
    plain = {
        **env,
        "INTEREST_STREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "INTEREST_STREAM_KAFKA_SASL_MECHANISM": "PLAIN",
    }
    refused = cli(secure, "producer", "publish", "-", stdin="", env=plain)
    assert "SASL PLAIN over SASL_PLAINTEXT would send the password" in one_line_error(refused)
    # the bare driver, too: a plaintext CQL connection is closed, nothing is answered
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


def test_secrets_never_appear_in_help_logs_or_json(secure_pipeline: SecurePipeline):
    secure, env = secure_pipeline.secure, secure_pipeline.env
    for command in ((), ("init",), ("publish",), ("worker",), ("watch",), ("profile", "get")):
        shown = cli(secure, "reader", *command, "--help", env=env)
        assert shown.returncode == 0, shown.stdout + shown.stderr
    # -vv: the drivers' debug logs too (kafka-python's admin client logs its configuration)
    full = cli(secure, "reader", "-vv", "profile", "get", "bookworm", "--json", "--vectors",
               env=env)  # fmt: skip
    assert full.returncode == 0 and '"long"' in full.stdout, full.stdout + full.stderr
    for identity, command in (
        ("init", ("init", "--no-cassandra", "--partitions", "2")),
        ("reader", ("watch", "--from-beginning", "--max", "1", "--timeout", "20")),
    ):
        debug = cli(secure, identity, "-vv", *command, env=env)
        assert debug.returncode == 0 and "DEBUG" in debug.stderr, debug.stdout + debug.stderr
    assert_no_secret(secure, secure_pipeline.worker.log_path.read_text(), "the worker's log")
    for name in ("kafka-secure", "cassandra-secure"):
        for log in (servers_home() / "run" / name / "logs").glob("*"):
            if log.is_file():
                assert_no_secret(secure, log.read_text(errors="replace"), str(log))


def test_every_env_file_is_private(secure_servers: dict[str, str]):
    secure_dir = servers_home() / "secure"
    assert secure_dir.stat().st_mode & 0o777 == 0o700
    for name in ("credentials", "init", "worker", "reader", "eraser", "producer"):
        assert (secure_dir / f"{name}.env").stat().st_mode & 0o077 == 0, name


@pytest.mark.slow
def test_bench_pipeline_passes_credentials_to_its_workers_and_clients(
    secure_servers: dict[str, str], onnx_encoder: Any
):
    from interest_stream.streams.lab.pipeline import bench_pipeline
    from interest_stream.streams.settings import load_settings

    base = secure_servers["INTEREST_STREAM_STORE_URL"].rsplit("/", 1)[0]
    # The bench creates and drops its own topics and keyspaces, reads and writes them: the
    # super users (an administrator's tool). Credentials in the settings only: the bench
    # hands them on itself.
    settings = load_settings(
        brokers=secure_servers["INTEREST_STREAM_BROKERS"],
        store_url=f"{base}/unused",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_username=secure_servers["LOCAL_KAFKA_ADMIN_USER"],
        kafka_password=secure_servers["LOCAL_KAFKA_ADMIN_PASSWORD"],
        kafka_ssl_cafile=secure_servers["LOCAL_SECURE_CAFILE"],
        cassandra_username=secure_servers["LOCAL_CASSANDRA_ADMIN_USER"],
        cassandra_password=secure_servers["LOCAL_CASSANDRA_ADMIN_PASSWORD"],
        cassandra_ssl_cafile=secure_servers["LOCAL_SECURE_CAFILE"],
        batch_size=32,
        precision="fp32",
    )
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
